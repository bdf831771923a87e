/**
 * The delivery seam: what every way of putting an image on a node (./../tpi, ./../swupdate) provides to
 * the generic provider logic (../delivery-provider.ts), which holds no branch on the kind.
 *
 * A method is a plain object: `check` reads its own inputs (the common ones are read for it), `id`
 * names the resource, `diff` says what a change means for it (the generic diff has already decided
 * whether the image changed or drifted), `deliver` puts the image on the node, `probe` asks the node
 * what it runs (refresh), `remove` undoes what can be undone on delete. Words for the one-line
 * decision messages come with it, so the messages stay the method's own.
 */
import type { CheckFailure } from "../../provider-types";
import type { SshEndpoint } from "../../transport/endpoint";
import type { Connect, ProbeResult } from "./node";
import type { ProgressSink } from "./progress";

export type Raw = Record<string, unknown>;

/** Inputs every delivery has, whatever its method. */
export interface CommonInputs {
  nodeName: string;
  node: SshEndpoint;
  /** What the image is made of, for "why" messages: e.g. { "rootfs sha256": "…", "files digest": "…" }. */
  sources?: Record<string, string>;
  bootTimeoutSeconds: number;
  connectTimeoutSeconds: number;
  /** Secret. */
  sshPrivateKey?: string;
}

/** What a delivery records about the node beside its inputs. */
export interface DeliveryState {
  /** Image id the node reported after our delivery, or at the last refresh. */
  runningImageId?: string;
  /** TuringPiFlash: the node's host key recorded right after our flash. */
  nodeHostKey?: string;
  /** Refresh found the node presenting another host key. */
  hostKeyChanged?: boolean;
  /** Result of the last refresh ("ok", or why the node could not be checked). */
  lastCheck?: string;
}

export interface OpOptions {
  progress?: ProgressSink;
  /** For tests: how SSH connections are made. */
  connect?: Connect;
}

/** What the generic diff found out about the image before asking the method. */
export interface ImageVerdict {
  /** The image (id or artifact sha256) differs, or is not known yet (preview). */
  imageChanged: boolean;
  /** Refresh found the node running another image than the one expected (and the image did not change). */
  drift: boolean;
  /** Why the image differs, for messages. */
  why: string;
}

/** A method's part of a diff. */
export interface MethodDiff {
  /** Inputs whose change replaces the resource. */
  replaces: string[];
  /** Human-readable reasons, in order. */
  reasons: string[];
  /** The node is acted on by an in-place update (without a replace). */
  touches: boolean;
}

export interface DeliveryMethod<I extends CommonInputs & { kind: string }> {
  readonly kind: I["kind"];
  /** The delete-before-replace flag of a replace (a slot holds one image). */
  readonly deleteBeforeReplace: boolean;
  /** What the artifact is called in messages: "disk image sha256". */
  readonly artifactName: string;
  /** Validate and fill this method's inputs; `common` is already read. */
  check(news: Raw, common: Omit<CommonInputs, "node">, failures: CheckFailure[]): I;
  /** Resource id. */
  id(i: I): string;
  /** The image id the node must report, and the artifact's sha256 (either may be missing in old state). */
  imageId(i: Partial<I>): string | undefined;
  artifactSha(i: Partial<I>): string | undefined;
  /** Where the image goes, for messages: "slot 1 of bmc". */
  target(i: I): string;
  /** Message verbs: a new delivery, a replace, an in-place update that touches the node; where an unchanged image is. */
  verbs(i: I): { create: string; replace: string; update: string; unchanged: string };
  diff(olds: Partial<I & DeliveryState>, news: I, v: ImageVerdict): MethodDiff;
  deliver(i: I, o: OpOptions): Promise<{ runningImageId: string; nodeHostKey?: string }>;
  probe(i: I & DeliveryState, o: OpOptions): Promise<ProbeResult>;
  remove(i: I & DeliveryState, o: OpOptions): Promise<void>;
}
