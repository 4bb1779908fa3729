"""What travels with the pixels: run metadata, OME annotations, pixel sizes and their units.

napari-mpid stores the run that wrote a file inside it: as JSON in an ImageJ
hyperstack's "Info" property, as an OME MapAnnotation (namespace
:data:`RUN_NAMESPACE`) in an OME-TIFF, or as the :data:`ZARR_ATTRIBUTE`
attribute of an OME-Zarr group. Where a format cannot hold our axes as they
are, a record of how they were stored goes beside it (:data:`LAYOUT_NAMESPACE`,
see :class:`napari_mpid.files.arrays.Layout`). This module turns those
records and the formats' pixel sizes into Python values and back; it opens
no file.
"""

from __future__ import annotations

import json
import re
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

import numpy as np

__all__ = [
    "LAYOUT_NAMESPACE",
    "NGFF_UNITS",
    "RUN_NAMESPACE",
    "SHORT_UNITS",
    "ZARR_ATTRIBUTE",
    "decode_map_value",
    "encode_map_value",
    "imagej_scale",
    "info_metadata",
    "jsonable",
    "map_annotation_xml",
    "ome_annotations",
    "ome_scale",
    "ome_unit",
]

#: OME MapAnnotation namespaces and the Zarr attribute holding napari-mpid's records.
RUN_NAMESPACE = "napari-mpid/run"
LAYOUT_NAMESPACE = "napari-mpid/layout"
ZARR_ATTRIBUTE = "napari-mpid"

#: Unit spellings -> OME-NGFF unit names, and back.
NGFF_UNITS = {
    "µm": "micrometer",
    "\\u00b5m": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "micrometer": "micrometer",
    "nm": "nanometer",
    "nanometer": "nanometer",
    "mm": "millimeter",
    "millimeter": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "meter": "meter",
}
SHORT_UNITS = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "centimeter": "cm", "meter": "m"}


def jsonable(value: Any) -> Any:
    """A value with numpy scalars, tuples and unknown objects turned into JSON types.

    Parameters
    ----------
    value : Any
        Nested dicts, lists and tuples of anything.

    Returns
    -------
    Any
        The same structure with str keys, lists for tuples, Python numbers
        for numpy scalars and ``str(x)`` for objects JSON cannot hold.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def encode_map_value(value: Any) -> str:
    """A metadata value as the text of an OME MapAnnotation entry (read back by :func:`decode_map_value`).

    Strings are kept as they are unless they would read back as something
    else (e.g. "3"); everything else is JSON.

    Parameters
    ----------
    value : Any
        A value :func:`jsonable` can convert.

    Returns
    -------
    str
        The entry's text.
    """
    value = jsonable(value)
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value)


def decode_map_value(text: str) -> Any:
    """Inverse of :func:`encode_map_value`.

    Parameters
    ----------
    text : str
        An OME MapAnnotation entry's text.

    Returns
    -------
    Any
        The JSON value it holds, or the text itself when it is not JSON.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def map_annotation_xml(run: dict[str, Any]) -> str:
    """The ``<M K="...">...</M>`` entries of an OME MapAnnotation holding ``run``.

    Parameters
    ----------
    run : dict
        Keys and values to store (values encoded with :func:`encode_map_value`).

    Returns
    -------
    str
        The XML of the entries, escaped.
    """
    return "".join(f"<M K={quoteattr(str(k))}>{escape(encode_map_value(v))}</M>" for k, v in run.items())


def ome_annotations(xml: str) -> dict[str, dict[str, Any]]:
    """The MapAnnotations of an OME-XML document by namespace, values decoded.

    Parameters
    ----------
    xml : str
        An OME-XML document (an OME-TIFF's ImageDescription).

    Returns
    -------
    dict
        ``{namespace: {key: value}}``; empty when there is none or the XML does not parse.
    """
    out: dict[str, dict[str, Any]] = {}
    if "MapAnnotation" not in xml:
        return out
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return out
    for element in root.iter():
        if not element.tag.endswith("MapAnnotation"):
            continue
        namespace = element.attrib.get("Namespace", "")
        values = out.setdefault(namespace, {})
        for entry in element.iter():
            if entry.tag.endswith("}M") or entry.tag == "M":
                values[entry.attrib.get("K", "")] = decode_map_value(entry.text or "")
    return out


def info_metadata(info: str) -> dict[str, Any]:
    """Run metadata from an ImageJ "Info" property.

    Parameters
    ----------
    info : str
        The property's text: JSON (what napari-mpid writes), or older ``key = value`` lines.

    Returns
    -------
    dict
        The run's metadata; values of ``key = value`` lines stay text.
    """
    try:
        value = json.loads(info)
        if isinstance(value, dict):
            return value
    except ValueError:
        pass
    out: dict[str, Any] = {}
    for line in info.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            out[key.strip()] = value.strip()
    return out


def imagej_scale(tif: Any, axes: str) -> tuple[dict[str, float], str | None]:
    """Pixel size and unit of an ImageJ (or plain) TIFF.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file.
    axes : str
        Its axes in our letters (a Z spacing and a frame interval are kept only where Z or T is one of them).

    Returns
    -------
    scale : dict
        Size per axis letter (X, Y from the resolution tags; Z, T from ImageJ's metadata).
    unit : str or None
        The unit, ``"µm"`` for any spelling of micrometre.
    """
    scale: dict[str, float] = {}
    unit = None
    page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
    tags = page.tags
    for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
        if tag in tags:
            num, den = tags[tag].value
            if num:
                size = den / num
                if size != 1.0:
                    scale[letter] = float(size)
    ij = tif.imagej_metadata or {}
    if "spacing" in ij and "Z" in axes:
        scale["Z"] = float(ij["spacing"])
    if "finterval" in ij and "T" in axes:
        scale["T"] = float(ij["finterval"])
    if ij.get("unit"):
        unit = str(ij["unit"]).replace("\\u00B5", "µ")
        unit = "µm" if NGFF_UNITS.get(unit) == "micrometer" else unit
    return scale, unit


def ome_scale(xml: str) -> tuple[dict[str, float], str | None]:
    """Pixel size and unit of an OME-TIFF.

    Parameters
    ----------
    xml : str
        Its OME-XML.

    Returns
    -------
    scale : dict
        Size per axis letter (PhysicalSizeX/Y/Z, TimeIncrement).
    unit : str or None
        PhysicalSizeXUnit, or OME's default ``"µm"`` when sizes are given without one.
    """
    scale: dict[str, float] = {}
    unit = None
    for letter in "XYZ":
        m = re.search(rf'PhysicalSize{letter}="([0-9.eE+-]+)"', xml)
        if m:
            scale[letter] = float(m.group(1))
    m = re.search(r'TimeIncrement="([0-9.eE+-]+)"', xml)
    if m:
        scale["T"] = float(m.group(1))
    m = re.search(r'PhysicalSizeXUnit="([^"]+)"', xml)
    if m:
        unit = m.group(1)
    elif any(k in scale for k in "XYZ"):
        unit = "µm"  # the OME default unit
    return scale, unit


def ome_unit(unit: str | None) -> str | None:
    """A unit as OME-XML spells it.

    Parameters
    ----------
    unit : str or None
        Any spelling (``"um"``, ``"micron"``, ...).

    Returns
    -------
    str or None
        ``"µm"`` for any spelling of micrometre, other units unchanged, None for none.
    """
    if not unit:
        return None
    return "µm" if NGFF_UNITS.get(unit) == "micrometer" else unit
