"""The atlas: every embedded region of one model laid out on a 2-D map, clustered, labelled, with its
thumbnails packed into atlas textures (``ivs map``; served at ``/map`` and ``/clusters``).

Modules: ``layout`` (PCA, t-SNE, the stored transform that places new regions), ``clusters`` (HDBSCAN and
cluster ids that stay put across runs), ``labels`` (context words and zero-shot prompts), ``thumbs`` (atlas
textures), ``store`` (the files under ``DATA_DIR/maps/<model>/``) and ``build`` (one run of ``ivs map``).
"""
