/**
 * Reads the `isar-k3s:` stack config into the validated fleet model, plus the secrets that stay
 * Pulumi secrets (never plain strings in the program). Validation happens here, before any resource
 * is registered, so a bad config fails `pulumi preview` with every problem listed.
 */
import * as pulumi from "@pulumi/pulumi";
import { Fleet } from "../lib/model/types";
import { parseFleet, RawFleetConfig } from "../lib/model/parse";

export interface FleetSecrets {
  /** Private key the program logs in to nodes and BMCs with (OpenSSH or PEM); absent = SSH agent. */
  sshPrivateKey?: pulumi.Output<string>;
  /** Private key that signs sw-description. */
  swupdateSigningKey?: pulumi.Output<string>;
  /** SWUpdate AES key file contents ("<hexkey> <hexiv>") when swupdate.encrypt is on. */
  swupdateAesKey?: pulumi.Output<string>;
}

const OBJECT_KEYS: (keyof RawFleetConfig)[] = [
  "nodes", "bmcs", "artifacts", "isar", "k3s", "swupdate", "network", "delivery", "images", "authorizedKeys", "workloads",
];

export function readFleetConfig(cfg = new pulumi.Config("isar-k3s")): { fleet: Fleet; secrets: FleetSecrets } {
  const raw: RawFleetConfig = {};
  for (const key of OBJECT_KEYS) {
    const v = cfg.getObject<unknown>(key);
    if (v !== undefined) raw[key] = v;
  }
  raw.clusterName = cfg.get("clusterName") ?? `isar-k3s-${pulumi.getStack()}`.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 63);
  const fleet = parseFleet(raw);
  return {
    fleet,
    secrets: {
      sshPrivateKey: cfg.getSecret("sshPrivateKey"),
      swupdateSigningKey: cfg.getSecret("swupdateSigningKey"),
      swupdateAesKey: cfg.getSecret("swupdateAesKey"),
    },
  };
}
