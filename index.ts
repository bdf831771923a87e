/**
 * isar-k3s program entry: stack config in, the Fleet component, stack outputs out. No logic here:
 * validation lives in lib/model, ordering in lib/plan, resources in components/.
 */
import { readFleetConfig } from "./components/config";
import { Fleet } from "./components/fleet";

const { fleet, secrets } = readFleetConfig();
const cluster = new Fleet(fleet.clusterName, { fleet, secrets });

export const phases = cluster.phases;
export const nodes = cluster.nodes;
export const images = cluster.images;
export const updateManifest = cluster.updateManifestPath;
export const delivered = cluster.delivered;
/** Admin kubeconfig (secret): `pulumi stack output kubeconfig --show-secrets > kubeconfig`. */
export const kubeconfig = cluster.kubeconfig;
/** known_hosts lines for the nodes: `pulumi stack output knownHosts > known_hosts`, then `ssh -o UserKnownHostsFile=known_hosts`. */
export const knownHosts = cluster.knownHosts;
