# A short analysis in databroker 1.x's documented style (the v1 tutorial's calls), run as it is
# by databroker 1.2.5 (make_golden.py records its RESULTS) and by tests/compat/test_notebook.py
# with only the import lines changed. GOLDEN_CATALOG names a YAML catalog file with an entry
# "golden" (the six golden runs).
import os

import intake
import numpy as np
from databroker import Broker

db = Broker(intake.open_catalog(os.environ["GOLDEN_CATALOG"])["golden"])
RESULTS = {}

# the most recent run, and its table
h = db[-1]
RESULTS["last_plan"] = h.start["plan_name"]
RESULTS["last_exit"] = h.stop["exit_status"]
RESULTS["last_rows"] = len(h.table())

# a step scan: peak position and centre of mass
h = db[1]
df = h.table()
RESULTS["scan_fields"] = sorted(h.fields())
RESULTS["peak_motor"] = float(df["motor"][df["det"].idxmax()])
RESULTS["com"] = float((df["motor"] * df["det"]).sum() / df["det"].sum())
RESULTS["first_seq_num"] = int(df.index[0])
RESULTS["duration_s"] = (df["time"].iloc[-1] - df["time"].iloc[0]).total_seconds()
base = h.table("baseline")
RESULTS["baseline_motor1"] = base["motor1"].tolist()

# configuration of a detector
h = db[2]
RESULTS["det_c"] = h.config_data("det")["primary"][0]["det_c"]

# images: mean frame over the run, and one pixel
h = db[3]
frames = np.array(list(h.data("img")))
RESULTS["image_shape"] = list(frames.shape)
RESULTS["image_mean"] = float(frames.mean())
RESULTS["image_pixel"] = float(h.table(fill=True)["img"][2][3, 4])

# searches
RESULTS["count_runs"] = sorted(h.start["scan_id"] for h in db(plan_name="count"))
RESULTS["calibration"] = [h.start["sample"] for h in db(purpose="calibration")]

# several runs in one table, and every event of a run
table = db.get_table([db[2], db[6]], fields=["det", "det_a"])
RESULTS["multi_columns"] = list(table.columns)
RESULTS["multi_rows"] = len(table)
RESULTS["events_grid"] = sum(1 for _ in db[5].events())
RESULTS["grid_det4_sum"] = float(sum(e["data"]["det4"] for e in db.get_events(db[5])))
RESULTS["documents"] = [name for name, doc in db[-1].documents()]
