"""A reward and style-search service: ``paraspeechclap serve``.

- :mod:`.settings`: limits and options (:class:`ServeSettings`), one place for the defaults.
- :mod:`.batcher`: :class:`DynamicBatcher`, which merges concurrent requests' clips into model batches.
- :mod:`.inputs`: request parsing (JSON with base64 audio, multipart uploads, allow-listed paths) and
  decoding under the limits; every refusal is an :class:`~.inputs.HTTPProblem` with a status and one line.
- :mod:`.tags`: which attribute-set labels a free-text style prompt names.
- :mod:`.engine`: :class:`Engine`, the model behind the endpoints (embeddings, scores, classes, rewards).
- :mod:`.app`: the FastAPI application (:func:`create_app`; imports FastAPI) and the web page under ``static/``.

FastAPI and uvicorn come with the ``[serve]`` extra; nothing here imports them at package import.
"""

from .settings import ServeSettings

__all__ = ["ServeSettings"]
