"""Socket type names and menu categories shared by the nodes."""

FACES = "FACES"  # face.faces.FaceSet

CATEGORY_ROOT = "Diffusion Face Restore"
CATEGORY_FACES = f"{CATEGORY_ROOT}/faces"
