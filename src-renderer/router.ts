import { createRouter, createWebHashHistory, type RouteRecordRaw } from 'vue-router';
import DatasetsView from './views/DatasetsView.vue';
import TrainView from './views/TrainView.vue';
import RunsView from './views/RunsView.vue';
import ChatView from './views/ChatView.vue';
import ModelsView from './views/ModelsView.vue';
import DatasetView from './views/DatasetView.vue';
import RunView from './views/RunView.vue';
import LabelingView from './views/LabelingView.vue';

/** The sections shown in the sidebar, in order. */
export const sections = [
  { path: '/datasets', name: 'datasets', title: 'Datasets', component: DatasetsView },
  { path: '/train', name: 'train', title: 'Train', component: TrainView },
  { path: '/runs', name: 'runs', title: 'Runs', component: RunsView },
  { path: '/chat', name: 'chat', title: 'Chat', component: ChatView },
  { path: '/models', name: 'models', title: 'Models', component: ModelsView },
] as const;

const routes: RouteRecordRaw[] = [
  { path: '/', redirect: '/datasets' },
  ...sections.map((s) => ({ path: s.path, name: s.name, component: s.component, meta: { title: s.title } })),
  {
    path: '/datasets/:id(\\d+)',
    name: 'dataset',
    component: DatasetView,
    meta: { title: 'Dataset', section: 'datasets' },
  },
  {
    path: '/datasets/:id(\\d+)/items/:itemId(\\d+)',
    name: 'label',
    component: LabelingView,
    meta: { title: 'Label', section: 'datasets' },
  },
  { path: '/runs/:id(\\d+)', name: 'run', component: RunView, meta: { title: 'Run', section: 'runs' } },
  { path: '/:pathMatch(.*)*', redirect: '/datasets' },
];

// Hash history: works from file:// in Electron and from any path in serve mode.
export const router = createRouter({ history: createWebHashHistory(), routes });

router.afterEach((to) => {
  const title = to.meta.title as string | undefined;
  document.title = title ? `${title} · Lenslab` : 'Lenslab';
});
