/** Local workload files (manifests, Helm chart directories): resolved against the project, checked up front. */
import * as path from "path";
import { checkWorkloadFiles, localChartDir, manifestPath } from "../../lib/model/workload-files";

const ROOT = path.resolve(__dirname, "..", "..");
const DEV = {
  namespaces: ["isar-k3s-platform"],
  manifests: ["dev/workloads/platform.yaml"],
  helmCharts: [{ name: "isar-k3s-info", chart: "./dev/workloads/charts/isar-k3s-info", namespace: "isar-k3s-platform", values: {} }],
};

test("the dev workloads' manifest and local chart exist", () => {
  expect(checkWorkloadFiles(DEV, ROOT)).toEqual([]);
  expect(manifestPath("dev/workloads/platform.yaml", ROOT)).toBe(path.join(ROOT, "dev/workloads/platform.yaml"));
  expect(localChartDir(DEV.helmCharts[0], ROOT)).toBe(path.join(ROOT, "dev/workloads/charts/isar-k3s-info"));
});

test("charts from a repository and manifest URLs are not local files", () => {
  expect(localChartDir({ name: "l", chart: "longhorn", repo: "https://charts.longhorn.io", namespace: "x", values: {} }, ROOT)).toBeUndefined();
  expect(localChartDir({ name: "l", chart: "./x", repo: "https://charts.example", namespace: "x", values: {} }, ROOT)).toBeUndefined();
  expect(manifestPath("https://example.com/a.yaml", ROOT)).toBe("https://example.com/a.yaml");
  expect(checkWorkloadFiles({ namespaces: [], manifests: ["https://example.com/a.yaml"], helmCharts: [] }, ROOT)).toEqual([]);
});

test("a missing manifest or a directory without Chart.yaml is reported with its config path and the fix", () => {
  const problems = checkWorkloadFiles(
    {
      namespaces: [],
      manifests: ["dev/workloads/platform.yaml", "dev/workloads/nope.yaml"],
      helmCharts: [
        { name: "a", chart: "./dev/workloads/charts/isar-k3s-info", namespace: "x", values: {} },
        { name: "b", chart: "./dev/workloads", namespace: "x", values: {} },
      ],
    },
    ROOT,
  );
  expect(problems.map((p) => p.path)).toEqual(["workloads.manifests[1]", "workloads.helmCharts[1].chart"]);
  expect(problems[0].message).toMatch(/nope\.yaml does not exist: fix the path/);
  expect(problems[1].message).toMatch(/no Chart\.yaml.*or set repo/);
});
