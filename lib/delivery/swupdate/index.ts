/** SWUpdate delivery over SSH: the install (./install.ts) and the method (./method.ts). */
export * from "./install";
export * from "./method";
