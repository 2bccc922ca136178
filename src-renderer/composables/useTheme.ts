import { ref, watchEffect } from 'vue';

export type Theme = 'system' | 'light' | 'dark';
const KEY = 'lenslab-theme';

function load(): Theme {
  try {
    const v = localStorage.getItem(KEY);
    return v === 'light' || v === 'dark' ? v : 'system';
  } catch {
    return 'system';
  }
}

/** The colour theme: 'system' follows prefers-color-scheme; the choice is kept in localStorage. */
export function useTheme(root: HTMLElement = document.documentElement) {
  const theme = ref<Theme>(load());
  watchEffect(() => {
    if (theme.value === 'system') root.removeAttribute('data-theme');
    else root.setAttribute('data-theme', theme.value);
    try {
      localStorage.setItem(KEY, theme.value);
    } catch {
      // private mode: the choice lasts for this page only
    }
  });
  const order: Theme[] = ['system', 'light', 'dark'];
  const cycle = () => {
    theme.value = order[(order.indexOf(theme.value) + 1) % order.length];
  };
  return { theme, cycle };
}
