// Builds the annotator UI into dist/, which Django adds to STATICFILES_DIRS.
// File names are fixed (no content hash) so templates can name them with
// {% static 'assets/app.js' %}; whitenoise adds the cache-busting at collectstatic.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/static/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    manifest: true,
    rollupOptions: {
      input: { app: "src/main.ts" },
      output: {
        entryFileNames: "assets/[name].js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
  },
});
