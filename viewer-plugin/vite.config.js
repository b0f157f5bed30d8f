import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Two builds:
//  - default: the plugin as an ES module for bundlers; Mirador, React and MUI come from the host.
//  - BUILD=viewer: one IIFE with Mirador + the plugin for plain <script> pages (global
//    `MiradorFindSimilar`), because Mirador's own UMD file does not expose its React to plugins.
const viewerBuild = process.env.BUILD === 'viewer';
const external = [/^react($|\/)/, /^react-dom($|\/)/, /^mirador($|\/)/, /^@mui\//, /^@emotion\//];

export default defineConfig({
  build: viewerBuild
    ? {
      emptyOutDir: false,
      lib: {
        entry: 'src/viewer.js', fileName: () => 'mirador-find-similar.viewer.js', formats: ['iife'], name: 'MiradorFindSimilar',
      },
      sourcemap: false,
    }
    : {
      lib: { entry: 'src/index.js', fileName: () => 'mirador-find-similar.es.js', formats: ['es'] },
      rollupOptions: { external },
      sourcemap: true,
    },
  define: viewerBuild ? { 'process.env.NODE_ENV': JSON.stringify('production') } : {},
  plugins: [react()],
  test: {
    environment: 'happy-dom',
    include: ['__tests__/**/*.test.{js,jsx}'],
    sequence: { shuffle: true },
    setupFiles: ['__tests__/setup.js'],
  },
});
