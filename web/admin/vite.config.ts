// The admin UI is served by the host under /admin/ from the files this writes to dist/
// (embedded into the `ucms` binary by host/build.rs). Build with `cargo xtask web`.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/admin/',
  // Preact's automatic JSX runtime (tsconfig's jsxImportSource) without a Babel plugin.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // No inline scripts: the host's Content-Security-Policy allows only files from /admin/.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8080', '/readyz': 'http://127.0.0.1:8080' },
  },
});
