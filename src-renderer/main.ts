import { createApp } from 'vue';
import { createPinia } from 'pinia';
import App from './App.vue';
import { router } from './router';
import { hideTokenInUrl } from './api';
import './styles.css';

hideTokenInUrl();
createApp(App).use(createPinia()).use(router).mount('#app');
