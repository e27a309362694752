// What the Tasks and Notes sections share: the windowed list of one kind of record, its view
// tabs and search, the re-read after live events (one per burst), the Conflicts tab's count,
// a flag toggled at once on screen, and delete with Undo. Each section adds its own pane.

import { api } from "./api.js";
import * as live from "./live.js";
import { toast } from "./toast.js";
import { VirtualList } from "./vlist.js";

const $ = (id) => document.getElementById(id);

export class Section {
  /**
   * @param {object} o
   * @param {"task"|"note"} o.kind
   * @param {string} o.plural            "tasks" / "notes", for counts and messages
   * @param {number} o.rowHeight         pixels per row (matches the CSS)
   * @param {(item: object) => HTMLElement} o.renderRow
   * @param {(view: string) => object} o.viewParams  the list filters of a view tab
   * @param {object} o.actions           the list's open / toggle / remove (see vlist.js)
   */
  constructor({ kind, plural, rowHeight, renderRow, viewParams, actions }) {
    Object.assign(this, { kind, plural, viewParams });
    this.path = `/api/${kind}s`;
    this.root = $(`${kind}s-view`);
    this.view = "all";
    this.query = "";
    this.refreshTimer = 0;
    this.showLoadError = (err) => toast(`Could not load ${plural}: ${err.message}`);
    this.list = new VirtualList({
      container: $(`${kind}-list`),
      rowHeight,
      renderRow,
      actions,
      fetchPage: (skip, limit) => api.list(this.path, { ...this.params(), skip, limit }),
      onTotal: (total) => {
        $(`${kind}-count`).textContent = `${total} ${total === 1 ? kind : plural}`;
        $(`${kind}-empty`).hidden = total > 0;
      },
    });
    for (const tab of this.root.querySelectorAll("[role=tab]")) {
      tab.addEventListener("click", () => this.setView(tab.dataset.view));
    }
    live.on("resync", () => this.refresh());
  }

  /** The current view's filters and search, as list query parameters. */
  params() {
    return { q: this.query || undefined, ...this.viewParams(this.view) };
  }

  /** Reads the first page; then the Conflicts count, which must not hold up the first view. */
  async start() {
    await this.list.reset();
    this.refreshConflictCount();
  }

  refreshSoon() {
    // Events come in bursts (a sync applies hundreds): one re-read per burst.
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = 0;
      this.refresh();
    }, 16);
  }

  refresh() {
    this.refreshConflictCount();
    return this.list.refresh().catch(this.showLoadError);
  }

  async refreshConflictCount() {
    try {
      const { total } = await api.list(this.path, { conflicts: true, limit: 1 });
      this.root.querySelector('[data-view="conflicts"]').hidden = total === 0 && this.view !== "conflicts";
      document.querySelector(`[data-count="${this.kind}-conflicts"]`).textContent = `(${total})`;
    } catch {
      // the list's own error says the API is down
    }
  }

  setView(name) {
    this.view = name;
    for (const tab of this.root.querySelectorAll("[role=tab]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.view === name));
      tab.tabIndex = tab.dataset.view === name ? 0 : -1;
    }
    this.refreshConflictCount(); // an emptied Conflicts view hides once left
    this.list.reset().catch(this.showLoadError);
  }

  setQuery(text) {
    if (text === this.query) return;
    this.query = text;
    this.list.reset().catch(this.showLoadError);
  }

  focusList() {
    this.list.setActive(this.list.active, { focus: true });
  }

  /** Flips a boolean field on screen at once, then in the API (undone on screen if that
   * fails); resolves with the saved record, or null. */
  async toggle(record, flag) {
    const value = !record[flag];
    this.list.patchItem(record.id, { [flag]: value });
    try {
      return await api.patch(`${this.path}/${record.id}`, { [flag]: value });
    } catch (err) {
      this.list.patchItem(record.id, { [flag]: record[flag] });
      toast(`Could not change “${record.title}”: ${err.message}`);
      return null;
    }
  }

  /** Deletes a record and offers Undo, which restores it in the place it left; resolves with
   * false if the delete failed. */
  async removeWithUndo(record) {
    try {
      await api.del(`${this.path}/${record.id}`);
    } catch (err) {
      if (err.status !== 404) {
        toast(`Could not delete “${record.title}”: ${err.message}`);
        return false;
      }
    }
    this.refresh();
    toast(`Deleted “${record.title}”`, { undo: () => this.restore(record) });
    return true;
  }

  async restore(record) {
    try {
      const restored = await api.post(`${this.path}/${record.id}/restore`);
      // It comes back to the place it left, which is where the list still is.
      await this.list.refresh();
      const at = this.list.indexOfId(restored.id);
      if (at >= 0) await this.list.reveal(at, restored.id);
      this.list.focusActive();
    } catch (err) {
      toast(`Could not undo: ${err.message}`);
    }
  }
}
