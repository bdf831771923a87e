/**
 * Shared pieces of node delivery (Turing Pi flashing, SWUpdate over SSH): errors (./errors.ts), progress
 * (./progress.ts), the per-BMC lock (./lock.ts), the space check (./space.ts), what is asked of a running
 * node (./node.ts) and the seam every method implements (./method.ts).
 */
export * from "./errors";
export * from "./progress";
export * from "./lock";
export * from "./space";
export * from "./node";
export * from "./method";
export * from "./read";
