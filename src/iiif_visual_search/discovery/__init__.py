"""Following other publishers' IIIF Change Discovery 1.0 streams (``ivs sync``).

``documents`` reads the stream's JSON (untrusted, validated at the edge), ``walk`` reads one stream's pages
from the newest backwards as the specification's page algorithm does, ``state`` keeps what was applied per
stream in the catalogue, and ``sync`` applies the changes through the ordinary ingest path.
"""
