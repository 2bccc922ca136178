import { createApp, defineAsyncComponent, h } from 'vue';
import './theme.css';

// Every demos/<Name>.vue is one gallery page: /?c=<Name>&theme=dark
const demos = import.meta.glob('./demos/*.vue');
const params = new URLSearchParams(location.search);
const theme = params.get('theme') === 'dark' ? 'dark' : 'light';
document.documentElement.dataset.theme = theme;
const name = params.get('c');
const names = Object.keys(demos).map((p) => p.replace('./demos/', '').replace('.vue', '')).sort();
(window as unknown as { __demos: string[] }).__demos = names;

const App = {
  setup() {
    if (name && demos[`./demos/${name}.vue`]) {
      const Demo = defineAsyncComponent(demos[`./demos/${name}.vue`] as () => Promise<{ default: object }>);
      return () => h('main', { class: 'demo', 'data-demo': name, style: 'padding:16px' }, [h(Demo)]);
    }
    return () =>
      h('main', { style: 'padding:16px' }, [
        h('h1', 'Lenslab components'),
        h('ul', names.map((n) => h('li', [h('a', { href: `?c=${n}&theme=${theme}` }, n)]))),
      ]);
  },
};
createApp(App).mount('#app');
