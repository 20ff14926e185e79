"""Uploading media (multipart) and downloading it, with HTTP Range so players can seek.

The HTTP side of media files (the size-limited upload handler, single-range downloads) lives in
broker.media_http, which the developer API shares; who may read a file is
broker.services.media's question.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from broker import events
from broker.media_http import LimitedUploadHandler, check_declared_length, media_response
from broker.services import media as media_service
from frontdesk.api import serializers as s
from frontdesk.api.views import ERRORS, validated

FILE_RESPONSES = {
    (200, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The whole file, as its MIME type."),
    (206, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The part asked for with Range; see Content-Range."),
    416: OpenApiResponse(s.ErrorSchema, description="The Range lies outside the file."),
}


class MediaUploadView(APIView):
    parser_classes = [MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body (the session's CSRF check reads request.POST).
        request.upload_handlers = [LimitedUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        check_declared_length(request)  # refused before the body is read
        super().initial(request, *args, **kwargs)

    @extend_schema(
        tags=["media"], request={"multipart/form-data": s.MediaUploadRequest},
        responses={201: s.MediaSchema, **ERRORS,
                   411: OpenApiResponse(s.ErrorSchema, description="length_required: no Content-Length.")},
        description=(
            "Upload a photo, video, voice message or document, then send it with POST messages "
            "(media_id, optional text as caption). The type is decided from the content: image (JPEG, PNG, "
            "WebP), video (MP4, WebM), voice (Ogg/Opus, WebM/Opus, MP4/AAC), document (anything). A file over "
            "its kind's limit is refused with 413 too_large; content that is not of the declared kind with "
            "400 (field file); a body without Content-Length (Transfer-Encoding: chunked) with 411 "
            "length_required. Images are re-encoded without metadata and get a thumbnail."
        ),
    )
    def post(self, request):
        data = validated(s.MediaUploadRequest, request.data)
        upload = data["file"]
        try:
            media = media_service.upload(uploader=request.user, file=upload, kind=data.get("kind"))
        finally:
            upload.close()  # a temporary file goes now, whatever happened
        return Response(events.media_payload(media), status=status.HTTP_201_CREATED)


def _download(request, media_id: int, *, thumbnail: bool):
    media = media_service.readable_media(user=request.user, media_id=media_id)
    return media_response(request, media, thumbnail=thumbnail)


class MediaDownloadView(APIView):
    @extend_schema(tags=["media"], responses={**FILE_RESPONSES, **ERRORS},
                   description="The file, for its uploader and the members of conversations where it was sent "
                               "(and who have left such a group, up to the notice of their going); a profile photo "
                               "also for whoever sees its owner's name, a group's photo for the group's members "
                               "(anyone else gets 404). Supports Range (one range) for seeking.")
    def get(self, request, media_id: int):
        return _download(request, media_id, thumbnail=False)


class MediaThumbnailView(APIView):
    @extend_schema(tags=["media"], responses={**FILE_RESPONSES, **ERRORS},
                   description="A JPEG thumbnail of an image, for the same people as the file.")
    def get(self, request, media_id: int):
        return _download(request, media_id, thumbnail=True)
