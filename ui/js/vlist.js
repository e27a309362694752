// A windowed list: only the rows in view (and a few either side) exist in the DOM, pages of
// rows are fetched from the API as they scroll into view, and a refresh re-reads the pages in
// view while the old rows stay on screen, so a list of 10,000 tasks scrolls and updates without
// a long frame. Rows have a fixed height. Keyboard focus moves with a roving tabindex; the
// keys and clicks that act on a row call the section's `actions`.

const OVERSCAN = 8; // rows rendered beyond each edge of the view
const READ_AHEAD = 60; // rows whose page is fetched beyond each edge, so scrolling rarely waits

export class VirtualList {
  /**
   * @param {object} o
   * @param {HTMLElement} o.container  the scrolling element (role=list)
   * @param {number} o.rowHeight       pixels per row (matches the CSS)
   * @param {(skip: number, limit: number) => Promise<{rows: object[], total: number}>} o.fetchPage
   * @param {(item: object) => HTMLElement} o.renderRow  the one renderer for a record
   * @param {(total: number) => void} [o.onTotal]
   * @param {{open: Function, toggle: Function, remove: Function}} o.actions  what Enter or a
   *   click, Space or a click on `[data-action=toggle]`, and Delete do to a row's record
   */
  constructor({ container, rowHeight, fetchPage, renderRow, onTotal, actions, pageSize = 100 }) {
    Object.assign(this, { container, rowHeight, fetchPage, renderRow, onTotal, actions, pageSize });
    this.total = 0;
    this.pages = new Map(); // page number → rows
    this.stale = new Set(); // pages shown but to be re-read
    this.loading = new Map(); // page number → {generation, promise} of the read under way
    this.generation = 0;
    this.active = 0;
    this.rendered = new Map(); // index → {el, item}
    this.highlightId = null;
    this.spacer = document.createElement("div");
    this.spacer.className = "vlist-spacer";
    container.append(this.spacer);
    this._frame = 0;
    container.addEventListener("scroll", () => this.schedule(), { passive: true });
    container.addEventListener("keydown", (event) => this._onKey(event));
    container.addEventListener("click", (event) => this._onClick(event));
    container.addEventListener("focus", () => this.total && this.focusActive());
    new ResizeObserver(() => this.schedule()).observe(container);
  }

  _onKey(event) {
    if (event.ctrlKey || event.altKey || event.metaKey || event.target.closest("input, textarea, select")) return;
    // The row with the focus is the one the keys act on (a click or a script may have moved it).
    const focused = event.target.closest(".row");
    if (focused && focused.dataset.index !== undefined) this.active = Number(focused.dataset.index);
    const item = this.activeItem();
    const pageRows = Math.max(1, Math.floor(this.container.clientHeight / this.rowHeight) - 1);
    const keys = {
      ArrowDown: () => this.moveActive(1),
      ArrowUp: () => this.moveActive(-1),
      PageDown: () => this.moveActive(pageRows),
      PageUp: () => this.moveActive(-pageRows),
      Home: () => this.setActive(0, { focus: true }),
      End: () => this.setActive(this.total - 1, { focus: true }),
      " ": () => item && this.actions.toggle(item),
      Enter: () => item && this.actions.open(item, { keyboard: true }),
      Delete: () => item && this.actions.remove(item),
    };
    const action = keys[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  }

  _onClick(event) {
    const row = event.target.closest(".row");
    const item = row && this.itemAt(Number(row.dataset.index));
    if (!item) return;
    this.setActive(Number(row.dataset.index));
    if (event.target.dataset.action === "toggle") {
      event.preventDefault();
      this.actions.toggle(item);
    } else {
      this.actions.open(item, { keyboard: false });
      row.focus({ preventScroll: true });
    }
  }

  /** Shows a record just created at the end of the list at once, when the last page is
   * loaded; false if it is not. The create's own live event brings the re-read. */
  append(item) {
    const index = this.total;
    const page = Math.floor(index / this.pageSize);
    const rows = this.pages.get(page) ?? (index % this.pageSize === 0 ? [] : null);
    if (!rows || this.stale.has(page) || rows.length !== index % this.pageSize) return false;
    rows.push(item);
    this.pages.set(page, rows);
    this.total += 1;
    this.spacer.style.height = `${this.total * this.rowHeight}px`;
    if (this.onTotal) this.onTotal(this.total);
    this.active = index;
    this.scrollToIndex(index);
    this._flash(item.id);
    return true;
  }

  /** Changes a loaded record in place (an optimistic update); returns the old one, or null. */
  patchItem(id, changes) {
    const index = this.indexOfId(id);
    if (index < 0) return null;
    const rows = this.pages.get(Math.floor(index / this.pageSize));
    const before = rows[index % this.pageSize];
    rows[index % this.pageSize] = { ...before, ...changes };
    this._paint();
    return before;
  }

  /** Re-reads what is in view (and the total); rows stay on screen until the new ones arrive. */
  refresh() {
    this.generation += 1;
    for (const page of this.pages.keys()) this.stale.add(page);
    this.loading.clear();
    return this._ensureVisible();
  }

  /** Starts over from the top (a new filter or search). */
  reset() {
    this.generation += 1;
    this.pages.clear();
    this.stale.clear();
    this.loading.clear();
    this.container.scrollTop = 0;
    this.active = 0;
    this._clearRows();
    return this._ensureVisible();
  }

  schedule() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      // A page that failed to load is asked for again on the next scroll or refresh.
      this._ensureVisible().catch(() => {});
    });
  }

  itemAt(index) {
    const rows = this.pages.get(Math.floor(index / this.pageSize));
    return rows ? rows[index % this.pageSize] : undefined;
  }

  indexOfId(id) {
    for (const [page, rows] of this.pages) {
      const i = rows.findIndex((row) => row.id === id);
      if (i >= 0) return page * this.pageSize + i;
    }
    return -1;
  }

  activeItem() {
    return this.itemAt(this.active);
  }

  /** Moves the keyboard position; `focus` moves DOM focus with it. */
  setActive(index, { focus = false } = {}) {
    if (this.total === 0) {
      if (focus) this.container.focus({ preventScroll: true });
      return;
    }
    this.active = Math.max(0, Math.min(this.total - 1, index));
    this.scrollToIndex(this.active);
    this._paint();
    if (focus) this.focusActive();
  }

  moveActive(delta) {
    this.setActive(this.active + delta, { focus: true });
  }

  focusActive() {
    const entry = this.rendered.get(this.active);
    if (entry) entry.el.focus({ preventScroll: true });
    else this.container.focus({ preventScroll: true });
  }

  scrollToIndex(index) {
    const top = index * this.rowHeight;
    const view = this.container.clientHeight;
    if (top < this.container.scrollTop) this.container.scrollTop = top;
    else if (top + this.rowHeight > this.container.scrollTop + view) {
      this.container.scrollTop = top + this.rowHeight - view;
    }
  }

  /** Shows `index` (scrolling it into view) and marks the row with `id` for a moment. */
  async reveal(index, id) {
    this.active = Math.max(0, index);
    this.scrollToIndex(this.active);
    await this.refresh();
    // The list may only now be long enough to scroll that far.
    this.scrollToIndex(this.active);
    this._flash(id);
  }

  /** Marks the row with `id` for a moment. */
  _flash(id) {
    this.highlightId = id;
    this._paint();
    setTimeout(() => {
      if (this.highlightId === id) {
        this.highlightId = null;
        this._paint();
      }
    }, 1500);
  }

  async _ensureVisible() {
    const { first, last } = this._window(READ_AHEAD);
    const wanted = new Set();
    const firstPage = Math.floor(first / this.pageSize);
    const lastPage = Math.floor(Math.max(first, last - 1) / this.pageSize);
    for (let p = firstPage; p <= lastPage; p++) wanted.add(p);
    if (this.total === 0) wanted.add(0);
    const generation = this.generation;
    const fetches = [];
    for (const page of wanted) {
      const fresh = this.pages.has(page) && !this.stale.has(page);
      if (fresh) continue;
      const under = this.loading.get(page);
      if (under && under.generation === generation) {
        // Already being read for this refresh: wait for that read rather than return early.
        fetches.push(under.promise);
        continue;
      }
      const promise = this._load(page, generation);
      this.loading.set(page, { generation, promise });
      fetches.push(promise);
    }
    this._paint();
    await Promise.all(fetches);
  }

  async _load(page, generation) {
    let result;
    try {
      result = await this.fetchPage(page * this.pageSize, this.pageSize);
    } catch (err) {
      if (this.loading.get(page)?.generation === generation) this.loading.delete(page);
      throw err;
    }
    // A newer refresh began while this page was read: its result is what callers wait for.
    if (generation !== this.generation) return this._ensureVisible();
    this.loading.delete(page);
    if (this.counted && result.total !== this.total) {
      // The list grew or shrank: pages read before this one no longer line up with it.
      for (const other of [...this.pages.keys()]) if (other !== page) this.stale.add(other);
    }
    this.pages.set(page, result.rows);
    this.stale.delete(page);
    this._dropFarPages(page);
    if (result.total !== this.total || !this.counted) {
      this.counted = true;
      this.total = result.total;
      this.spacer.style.height = `${this.total * this.rowHeight}px`;
      if (this.active >= this.total) this.active = Math.max(0, this.total - 1);
      if (this.onTotal) this.onTotal(this.total);
    }
    this._paint();
    // Rows a changed total made stale, or a page now in view, get read too.
    this.schedule();
  }

  _dropFarPages(current) {
    if (this.pages.size <= 12) return;
    for (const page of [...this.pages.keys()]) {
      if (Math.abs(page - current) > 6) this.pages.delete(page);
    }
  }

  _window(margin = OVERSCAN) {
    const top = this.container.scrollTop;
    const height = this.container.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - margin);
    const last = Math.min(Math.max(this.total, 1), Math.ceil((top + height) / this.rowHeight) + margin);
    return { first, last };
  }

  _clearRows() {
    for (const { el } of this.rendered.values()) el.remove();
    this.rendered.clear();
  }

  /** Puts the rows in view on screen, re-rendering only rows whose record changed. */
  _paint() {
    const { first, last } = this._window();
    const end = Math.min(last, this.total);
    const hadFocus = this.container.contains(document.activeElement) &&
      document.activeElement !== this.container && document.activeElement.closest(".row");
    const focusedIndex = hadFocus ? Number(document.activeElement.closest(".row").dataset.index) : -1;
    for (const [index, entry] of this.rendered) {
      if (index < first || index >= end) {
        entry.el.remove();
        this.rendered.delete(index);
      }
    }
    for (let index = first; index < end; index++) {
      const item = this.itemAt(index) ?? null;
      let entry = this.rendered.get(index);
      if (!entry || entry.item !== item) {
        const el = item ? this.renderRow(item) : placeholder();
        el.classList.add("row");
        el.dataset.index = String(index);
        el.setAttribute("aria-setsize", String(this.total));
        el.setAttribute("aria-posinset", String(index + 1));
        el.style.transform = `translateY(${index * this.rowHeight}px)`;
        if (entry) entry.el.replaceWith(el);
        else this.spacer.append(el);
        entry = { el, item };
        this.rendered.set(index, entry);
      }
      const isActive = index === this.active;
      entry.el.tabIndex = isActive ? 0 : -1;
      entry.el.classList.toggle("active", isActive);
      entry.el.classList.toggle("flash", !!item && item.id === this.highlightId);
    }
    if (focusedIndex >= 0 && !this.container.contains(document.activeElement)) {
      const entry = this.rendered.get(focusedIndex) || this.rendered.get(this.active);
      if (entry) entry.el.focus({ preventScroll: true });
    }
    this.container.setAttribute("aria-busy", this.loading.size ? "true" : "false");
  }
}

function placeholder() {
  const el = document.createElement("div");
  el.setAttribute("role", "listitem");
  el.className = "placeholder";
  el.setAttribute("aria-label", "Loading");
  return el;
}
