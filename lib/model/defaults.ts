/**
 * Defaults of the delivery settings: one table, read by the config parser (./parse.ts, `delivery.*`) and
 * by the delivery providers' check (lib/delivery), so a value left out means the same everywhere.
 * SSH endpoint defaults (port 22, user root) live with the endpoint type (lib/transport/endpoint.ts).
 */
export const DELIVERY_DEFAULTS = {
  /** Seconds allowed for one `tpi flash` (delivery.flashTimeoutSeconds). */
  flashTimeoutSeconds: 3600,
  /** Seconds to wait for a node to answer SSH after power-on or reboot (delivery.bootTimeoutSeconds). */
  bootTimeoutSeconds: 900,
  /** Seconds to keep retrying an SSH connection to a BMC or a running node. */
  connectTimeoutSeconds: 60,
  /** Seconds allowed for one `swupdate` install. */
  installTimeoutSeconds: 1800,
  /** Agents delivered at once (delivery.maxAgentsInFlight). */
  maxAgentsInFlight: 2,
  /** Directory on a SWUpdate node for the uploaded bundle. */
  swupdateRemoteDir: "/var/tmp/isar-k3s",
  /** Directory on a BMC for uploaded images (bmcs[].imageDir). */
  bmcImageDir: "/mnt/sdcard/isar-k3s",
} as const;
