// Clover ships ES modules only: this entry is bundled (npm run build, esbuild) into dist/clover.js for
// pages/clover.html. Stock options, except opening the information panel where annotations are listed.
import React from 'react';
import { createRoot } from 'react-dom/client';
import Viewer from '@samvera/clover-iiif/viewer';

const params = new URLSearchParams(window.location.search);
createRoot(document.getElementById('clover')).render(
  <Viewer
    iiifContent={params.get('manifest')}
    options={{ informationPanel: { open: true, renderAnnotation: true, renderContentSearch: true } }}
  />,
);
