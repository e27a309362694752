"""The headers of the app's HTML pages: `Content-Security-Policy: default-src 'self'` (no
script, style or font from anywhere else, no inline script) and no sniffing or referrers."""

APP_CSP = "default-src 'self'"
HTML_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
