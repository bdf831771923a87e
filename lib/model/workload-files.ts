/**
 * The local files `workloads` names (manifests, Helm chart directories), resolved against the project
 * directory and checked before any resource is registered: a wrong path fails `pulumi preview` with
 * the config path, not halfway through an update.
 */
import * as fs from "fs";
import * as path from "path";
import type { ConfigProblem } from "./parse";
import type { HelmChart, WorkloadSettings } from "./types";

const URL_RE = /^https?:\/\//;

/** A manifest's file: URLs as they are, relative paths against projectDir. */
export function manifestPath(m: string, projectDir: string): string {
  return URL_RE.test(m) || path.isAbsolute(m) ? m : path.resolve(projectDir, m);
}

/**
 * The chart directory of a Helm chart that names a local one ("./x", "../x" or absolute, no repo),
 * resolved against projectDir; undefined for a chart from a repository.
 */
export function localChartDir(h: HelmChart, projectDir: string): string | undefined {
  return !h.repo && /^(\.{1,2}\/|\/)/.test(h.chart) ? path.resolve(projectDir, h.chart) : undefined;
}

/** Problems with the local files of `w`, each naming its config path and the fix. */
export function checkWorkloadFiles(w: WorkloadSettings, projectDir: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  w.manifests.forEach((m, i) => {
    const file = manifestPath(m, projectDir);
    if (!URL_RE.test(file) && !fs.existsSync(file)) {
      problems.push({ path: `workloads.manifests[${i}]`, message: `${file} does not exist: fix the path (relative to the project directory ${projectDir})` });
    }
  });
  w.helmCharts.forEach((h, i) => {
    const dir = localChartDir(h, projectDir);
    if (dir !== undefined && !fs.existsSync(path.join(dir, "Chart.yaml"))) {
      problems.push({
        path: `workloads.helmCharts[${i}].chart`,
        message: `${dir} is not a Helm chart directory (no Chart.yaml): fix the path (relative to the project directory), or set repo for a chart from a repository`,
      });
    }
  });
  return problems;
}
