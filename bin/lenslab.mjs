#!/usr/bin/env node
// The `lenslab` command: runs the TypeScript CLI from source through tsx.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src-main/cli.ts');
process.exitCode = await runCli(process.argv.slice(2));
