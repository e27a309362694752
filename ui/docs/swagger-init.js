// Starts Swagger UI from a file rather than an inline script, so the page keeps its CSP.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi,
    dom_id: "#swagger-ui",
    oauth2RedirectUrl: window.location.origin + "/docs/oauth2-redirect",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
  });
});
