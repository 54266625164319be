/* A minimal event emitter (no dependency on Node's events or the DOM's
 * EventTarget, so the same code runs in both). A listener that throws does
 * not break the client: the exception is rethrown on a fresh task, where
 * the host reports it as any uncaught error. */
export class Emitter {
  constructor() { this._l = new Map(); }

  on(event, fn) {
    if (!this._l.has(event)) this._l.set(event, new Set());
    this._l.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    const s = this._l.get(event);
    if (s) s.delete(fn);
    return this;
  }

  once(event, fn) {
    const w = (...a) => { this.off(event, w); fn(...a); };
    return this.on(event, w);
  }

  emit(event, ...args) {
    const s = this._l.get(event);
    if (!s || !s.size) return false;
    for (const fn of [...s]) {
      try { fn(...args); } catch (e) { setTimeout(() => { throw e; }); }
    }
    return true;
  }
}
