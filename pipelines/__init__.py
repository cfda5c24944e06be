"""Django-free helpers shared by the annotation platform and the model service."""
