/**
 * Reads the `isar-k3s:` stack config into the validated fleet model, plus the secrets that stay
 * Pulumi secrets (never plain strings in the program). Validation happens here, before any resource
 * is registered, so a bad config fails `pulumi preview` with every problem listed.
 */
import * as pulumi from "@pulumi/pulumi";
import { Fleet } from "../lib/model/types";
import { FleetConfigError, parseFleet, RawFleetConfig } from "../lib/model/parse";
import { checkWorkloadFiles } from "../lib/model/workload-files";
import { projectRoot } from "../lib/project";

export interface FleetSecrets {
  /** Private key the program logs in to nodes and BMCs with (OpenSSH or PEM); absent (config value "ssh-agent") = SSH agent. */
  sshPrivateKey?: pulumi.Output<string>;
  /** Private key that signs sw-description. */
  swupdateSigningKey?: pulumi.Output<string>;
  /** SWUpdate AES key file contents ("<hexkey> <hexiv>") when swupdate.encrypt is on. */
  swupdateAesKey?: pulumi.Output<string>;
  /** Token of an existing cluster to adopt; absent (default) = a new @pulumi/random RandomPassword. */
  clusterToken?: pulumi.Output<string>;
}

const OBJECT_KEYS: (keyof RawFleetConfig)[] = [
  "nodes",
  "bmcs",
  "artifacts",
  "isar",
  "k3s",
  "swupdate",
  "network",
  "delivery",
  "images",
  "authorizedKeys",
  "workloads",
];

export function readFleetConfig(cfg = new pulumi.Config("isar-k3s")): { fleet: Fleet; secrets: FleetSecrets } {
  const raw: RawFleetConfig = {};
  for (const key of OBJECT_KEYS) {
    const v = cfg.getObject<unknown>(key);
    // Pulumi.yaml gives optional objects an empty default: empty means "not configured".
    const empty = key === "isar" && typeof v === "object" && v !== null && Object.keys(v).length === 0;
    if (v !== undefined && !empty) raw[key] = v;
  }
  // A plain string (getObject would try to parse it as JSON).
  raw.deployUser = cfg.get("deployUser") || undefined;
  raw.clusterName =
    cfg.get("clusterName") ||
    `isar-k3s-${pulumi.getStack()}`
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, "-")
      .slice(0, 63);
  const fleet = parseFleet(raw);
  const fileProblems = checkWorkloadFiles(fleet.workloads, projectRoot());
  if (fileProblems.length > 0) throw new FleetConfigError(fileProblems);
  return {
    fleet,
    secrets: {
      sshPrivateKey: cfg.get("sshPrivateKey") === "ssh-agent" ? undefined : optionalSecret(cfg, "sshPrivateKey"),
      swupdateSigningKey: optionalSecret(cfg, "swupdateSigningKey"),
      swupdateAesKey: optionalSecret(cfg, "swupdateAesKey"),
      clusterToken: optionalSecret(cfg, "clusterToken"),
    },
  };
}

/** A secret key whose project default is "" (= not set): undefined when unset or empty. */
function optionalSecret(cfg: pulumi.Config, key: string): pulumi.Output<string> | undefined {
  const v = cfg.get(key);
  return v ? pulumi.secret(v) : undefined;
}
