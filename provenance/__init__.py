"""What a file declares about its own origin: Content Credentials (C2PA), the IPTC digital source type in XMP,
generator metadata (Stable Diffusion front-ends) and camera EXIF.

A stage like `detector/`: it imports `core` only and reads the file's bytes, never its decoded pixels. Everything
here is evidence to show; `findings.ProvenanceFindings.votes_fake` is the single place that lets a part of it vote,
and only behind a signature that validates and chains to a trust anchor the user chose (or the shipped C2PA list).
"""
