// A counter that bumps when the theme may have changed: the <html> class/data-theme/style attribute,
// or the OS colour scheme. Components that paint with colours read from CSS (charts on canvas) watch it.
import { onScopeDispose, ref, getCurrentScope } from 'vue';

export function useThemeVersion() {
  const version = ref(0);
  const g = globalThis as unknown as {
    document?: { documentElement: unknown };
    MutationObserver?: new (cb: () => void) => { observe(t: unknown, o: unknown): void; disconnect(): void };
    matchMedia?: (q: string) => {
      addEventListener(t: string, f: () => void): void;
      removeEventListener(t: string, f: () => void): void;
    };
  };
  const bump = () => {
    version.value++;
  };
  const mo = g.MutationObserver && g.document ? new g.MutationObserver(bump) : null;
  mo?.observe(g.document!.documentElement, { attributes: true, attributeFilter: ['class', 'data-theme', 'style'] });
  const mq = g.matchMedia?.('(prefers-color-scheme: dark)');
  mq?.addEventListener('change', bump);
  if (getCurrentScope()) {
    onScopeDispose(() => {
      mo?.disconnect();
      mq?.removeEventListener('change', bump);
    });
  }
  return version;
}

/** Read a CSS custom property from an element, trimmed; `fallback` when unset. */
export function cssVar(el: Element | null | undefined, name: string, fallback: string): string {
  if (!el || typeof getComputedStyle !== 'function') return fallback;
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}
