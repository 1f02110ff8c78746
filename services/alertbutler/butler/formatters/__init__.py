"""Formatters and the one ``(format, storage class)`` table that holds them."""

from .arrays import NpyFormatter, PngFormatter
from .avro import AvroFormatter
from .base import FORMATTERS, Formatter, FormatterRegistry
from .fits import (
    FitsExposureFormatter,
    FitsImageFormatter,
    FitsRawFormatter,
    FitsWcsFormatter,
    read_raw_header,
)
from .tables import FitsTableFormatter, ParquetFormatter
from .text import JsonFormatter, YamlFormatter


def _register_builtins() -> None:
    FORMATTERS.register(YamlFormatter(), ("StructuredDataDict", "AlertPacket"))
    FORMATTERS.register(JsonFormatter(), ("StructuredDataDict", "AlertPacket", "AlertBatch"))
    FORMATTERS.register(NpyFormatter(), ("NumpyArray", "Psf", "Image", "Mask"))
    FORMATTERS.register(FitsImageFormatter(), ("Image", "Mask", "NumpyArray", "Psf"))
    FORMATTERS.register(FitsExposureFormatter(), ("Exposure",))
    FORMATTERS.register(FitsRawFormatter(), ("RawExposure",))
    FORMATTERS.register(FitsWcsFormatter(), ("Wcs",))
    FORMATTERS.register(FitsTableFormatter(), ("Catalog", "SourceCatalog"))
    FORMATTERS.register(ParquetFormatter(), ("Catalog", "SourceCatalog"))
    FORMATTERS.register(PngFormatter(), ("Plot",))
    FORMATTERS.register(AvroFormatter(), ("RecordBatch",))


_register_builtins()

__all__ = ["FORMATTERS", "AvroFormatter", "FitsExposureFormatter", "FitsImageFormatter",
           "FitsRawFormatter", "FitsTableFormatter", "FitsWcsFormatter", "Formatter",
           "FormatterRegistry", "JsonFormatter", "NpyFormatter", "ParquetFormatter",
           "PngFormatter", "YamlFormatter", "read_raw_header"]
