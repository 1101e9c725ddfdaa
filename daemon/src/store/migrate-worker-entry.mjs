// Worker entry: loads the TypeScript worker body through tsx (workers do not inherit the loader).
import { register } from 'tsx/esm/api';

register();
await import('./migrate-worker.ts');
