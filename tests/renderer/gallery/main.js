// Gallery entry (plain JS so the Node type-check config, which covers tests/**/*.ts, skips this DOM code).
// Uses the app's real stylesheet so components look as they will in the shell.
import { createApp } from 'vue';
import Gallery from './Gallery.vue';
import '../../../src-renderer/styles.css';
import './theme.css';

createApp(Gallery).mount('#app');
