/**
 * ClusterToken: a random k3s cluster token as a dynamic resource, for stacks whose engine has no
 * @pulumi/random plugin (config `k3s.tokenSource: builtin`). Created once, kept in state only as a
 * secret (additionalSecretOutputs), replaced only when its length changes.
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

const ROOT = path.resolve(__dirname, "..");

const tokenProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds, news) {
    const n = news.length ?? 48;
    const ok = Number.isInteger(n) && n >= 32 && n <= 256;
    return { inputs: { length: n }, failures: ok ? [] : [{ property: "length", reason: `${JSON.stringify(n)} must be an integer from 32 to 256` }] };
  },
  async diff(_id, olds, news) {
    const changed = olds.length !== news.length;
    return { changes: changed, replaces: changed ? ["length"] : [] };
  },
  async create(inputs) {
    const impl = require(ROOT + "/lib/k3s/token") as typeof import("../lib/k3s/token");
    return { id: "cluster-token", outs: { length: inputs.length, result: impl.generateToken(inputs.length) } };
  },
  async read(id, props) {
    return { id, props };
  },
};

export interface ClusterTokenArgs {
  /** Token length in characters of [A-Za-z0-9]. Default 48. A change replaces (a new token: the cluster must be rebuilt). */
  length?: pulumi.Input<number>;
}

export class ClusterToken extends pulumi.dynamic.Resource {
  /** The token (secret). */
  declare readonly result: pulumi.Output<string>;
  constructor(name: string, args: ClusterTokenArgs = {}, opts?: pulumi.CustomResourceOptions) {
    super(tokenProvider, name, { length: args.length ?? 48, result: undefined }, { ...opts, additionalSecretOutputs: ["result"] }, "isar-k3s", "ClusterToken");
  }
}
