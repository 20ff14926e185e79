"""Content negotiation shared by the client API and the developer API (both DRF)."""

from rest_framework.negotiation import DefaultContentNegotiation


class AnyAccept(DefaultContentNegotiation):
    """Answer in the view's one format whatever the request's Accept says: JSON for the API, the
    file as it is for downloads. An <img> asks for image/*, a browser's address bar for text/html;
    a 406 would serve neither, as there is no other format to offer. Errors are JSON too.

    Request bodies are still chosen by Content-Type (DRF's way: 415 for one no parser takes)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
