"""A picture of what the main job loaded: the items' footprints on a map, and items per collection over time.

    make map                                                        # opens it on http://127.0.0.1:2719
    marimo export html pipelines/map_notebook.py -o map.html -- --png map.png

A marimo notebook. It reads the tables of a pipeline (`--pipeline`, default `terrabyte`) where dlt finds them for
the main job: the pipeline's state under `DLT_DATA_DIR`, the destination's credentials from `.dlt/` or the
environment. It draws with matplotlib on longitude and latitude axes, so it needs no tile server and no network.
At most `--footprints` footprints (20,000) are drawn, so that a catalog of millions stays quick; the counts over
time cover every item. `--png` also saves the map there.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import json

    import dlt
    import marimo as mo
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    arguments = mo.cli_args()
    pipeline = dlt.attach(str(arguments.get("pipeline") or "terrabyte"))
    footprints_at_most = int(arguments.get("footprints") or 20000)
    png_path = arguments.get("png")
    return PolyCollection, footprints_at_most, json, mo, pipeline, plt, png_path


@app.cell
def _(footprints_at_most, json, pipeline):
    def outer_rings(geometry):
        """The outer rings of a GeoJSON Polygon or MultiPolygon, as lists of (longitude, latitude)."""
        if geometry.get("type") == "Polygon":
            return [[point[:2] for point in geometry["coordinates"][0]]]
        if geometry.get("type") == "MultiPolygon":
            return [[point[:2] for point in polygon[0]] for polygon in geometry["coordinates"]]
        return []

    with pipeline.sql_client() as client:
        items = client.make_qualified_table_name("items")
        postgis = pipeline.destination.destination_name == "postgres" and client.execute_sql(
            "SELECT udt_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = 'items' AND column_name = 'geometry'",
            client.dataset_name,
        ) == [("geometry",)]
        as_geojson = "ST_AsGeoJSON(geometry)" if postgis else "geometry"
        drawn = client.execute_sql(f"SELECT collection, {as_geojson} FROM {items} LIMIT {footprints_at_most}")
        per_month = client.execute_sql(
            "SELECT collection, CAST(date_trunc('month', COALESCE(datetime, start_datetime)) AS DATE) AS month,"
            f" COUNT(*) FROM {items} GROUP BY 1, 2 ORDER BY 2, 1"
        )
    footprints = {}
    for _collection, _geometry in drawn:
        _parsed = json.loads(_geometry) if isinstance(_geometry, str) else _geometry
        footprints.setdefault(_collection, []).extend(outer_rings(_parsed or {}))
    total = sum(count for _, _, count in per_month)
    collections = sorted({collection for collection, _, _ in per_month})
    return collections, drawn, footprints, per_month, total


@app.cell
def _(PolyCollection, footprints, plt, png_path):
    map_figure, map_axes = plt.subplots(figsize=(10, 6))
    colors = plt.get_cmap("tab10" if len(footprints) <= 10 else "tab20")
    for _number, (_collection, _rings) in enumerate(sorted(footprints.items())):
        _red, _green, _blue, _ = colors(_number % colors.N)
        _shapes = PolyCollection(
            _rings, facecolors=(_red, _green, _blue, 0.25), edgecolors=(_red, _green, _blue, 0.9), linewidths=0.6
        )
        _shapes.set_label(_collection)
        map_axes.add_collection(_shapes)
    map_axes.autoscale()
    map_axes.set_xlim(max(map_axes.get_xlim()[0], -180), min(map_axes.get_xlim()[1], 180))
    map_axes.set_ylim(max(map_axes.get_ylim()[0], -90), min(map_axes.get_ylim()[1], 90))
    map_axes.set_aspect("equal", adjustable="box")
    map_axes.set_xlabel("longitude")
    map_axes.set_ylabel("latitude")
    map_axes.grid(True, linewidth=0.3)
    map_axes.set_title("Footprints of the loaded items")
    map_axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    map_figure.tight_layout()
    if png_path:
        map_figure.savefig(png_path, dpi=100)
    return (map_figure,)


@app.cell
def _(per_month, plt):
    time_figure, time_axes = plt.subplots(figsize=(10, 3.5))
    by_collection = {}
    for _collection, _month, _count in per_month:
        by_collection.setdefault(_collection, []).append((_month, _count))
    for _collection, _counts in sorted(by_collection.items()):
        _months, _numbers = [month for month, _ in _counts], [count for _, count in _counts]
        time_axes.plot(_months, _numbers, marker="o", markersize=3, linewidth=1, label=_collection)
    time_axes.set_ylabel("items per month")
    time_axes.set_title("Items per collection over time (month of acquisition)")
    time_axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    time_figure.tight_layout()
    return (time_figure,)


@app.cell
def _(collections, drawn, map_figure, mo, pipeline, time_figure, total):
    mo.vstack(
        [
            mo.md(
                f"**{total:,} items** in {len(collections)} collections of `{pipeline.dataset_name}` "
                f"({pipeline.destination.destination_name}); the footprints of {len(drawn):,} drawn."
            ),
            map_figure,
            time_figure,
        ]
    )
    return


if __name__ == "__main__":
    app.run()
