// Gallery entry (plain JS so the Node type-check config, which covers tests/**/*.ts, skips this DOM code).
import { createApp } from 'vue';
import Gallery from './Gallery.vue';
import './theme.css';

createApp(Gallery).mount('#app');
