/** Turing Pi 2 delivery: the tpi protocol (./protocol.ts), the BMC side (./bmc.ts), the flash (./flash.ts), the method (./method.ts). */
export * from "./protocol";
export * from "./bmc";
export * from "./flash";
export * from "./method";
