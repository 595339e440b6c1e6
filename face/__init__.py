"""Faces in photos: detection, FFHQ alignment, crops and their inverse, paste-back masks, parsing,
colour matching, tracking over frames, previews."""
