/**
 * systemd-networkd files for a node's network profile (seed 002's network overlays):
 * - simple:        one interface carries k3s and storage traffic.
 * - vlans:         802.1Q VLANs on one interface: <if>.<k3sVlan> (k3s, node address) and
 *                  <if>.<storageVlan> (storage address).
 * - bonding-vlans: an 802.3ad bond0 over the member interfaces, the same two VLANs on top of it.
 *
 * Contract: returns files (path under /etc/systemd/network → content), sorted by path, deterministic.
 * Values come from the validated fleet (interface names, addresses, VLAN ids already checked), so no
 * escaping is needed beyond that validation.
 */
import { NetworkSettings, NodeSpec } from "../model/types";

export const NETWORKD_DIR = "/etc/systemd/network";

function ini(sections: [string, [string, string][]][]): string {
  return sections.map(([name, kv]) => `[${name}]\n${kv.map(([k, v]) => `${k}=${v}`).join("\n")}\n`).join("\n");
}

function addressLines(net: NetworkSettings, address: string, withRoute: boolean): [string, string][] {
  const lines: [string, string][] = [["Address", `${address}/${net.prefixLength}`]];
  if (withRoute && net.gateway) lines.push(["Gateway", net.gateway]);
  if (withRoute) for (const d of net.dns) lines.push(["DNS", d]);
  return lines;
}

function vlanNetdev(name: string, id: number): string {
  return ini([
    [
      "NetDev",
      [
        ["Name", name],
        ["Kind", "vlan"],
      ],
    ],
    ["VLAN", [["Id", String(id)]]],
  ]);
}

export function renderNetworkd(net: NetworkSettings, node: NodeSpec): Record<string, string> {
  const files: Record<string, string> = {};
  const put = (name: string, content: string) => {
    files[`${NETWORKD_DIR}/${name}`] = content;
  };
  if (net.profile === "simple") {
    put(
      `10-${net.interface}.network`,
      ini([
        ["Match", [["Name", net.interface]]],
        ["Network", addressLines(net, node.address, true)],
      ]),
    );
    return files;
  }
  const storage = node.storageAddress ?? node.address;
  const parent = net.profile === "vlans" ? net.interface : "bond0";
  const k3sIf = `${parent}.${net.k3sVlan}`;
  const storageIf = `${parent}.${net.storageVlan}`;
  if (net.profile === "bonding-vlans") {
    put(
      "05-bond0.netdev",
      ini([
        [
          "NetDev",
          [
            ["Name", "bond0"],
            ["Kind", "bond"],
          ],
        ],
        [
          "Bond",
          [
            ["Mode", "802.3ad"],
            ["TransmitHashPolicy", "layer3+4"],
            ["MIIMonitorSec", "100ms"],
          ],
        ],
      ]),
    );
    for (const m of net.bondInterfaces) {
      put(
        `06-${m}.network`,
        ini([
          ["Match", [["Name", m]]],
          ["Network", [["Bond", "bond0"]]],
        ]),
      );
    }
  }
  put(
    `10-${parent}.network`,
    ini([
      ["Match", [["Name", parent]]],
      [
        "Network",
        [
          ["VLAN", k3sIf],
          ["VLAN", storageIf],
          ["LinkLocalAddressing", "no"],
        ],
      ],
    ]),
  );
  put(`20-${k3sIf}.netdev`, vlanNetdev(k3sIf, net.k3sVlan));
  put(`20-${storageIf}.netdev`, vlanNetdev(storageIf, net.storageVlan));
  put(
    `30-${k3sIf}.network`,
    ini([
      ["Match", [["Name", k3sIf]]],
      ["Network", addressLines(net, node.address, true)],
    ]),
  );
  put(
    `30-${storageIf}.network`,
    ini([
      ["Match", [["Name", storageIf]]],
      ["Network", addressLines(net, storage, false)],
    ]),
  );
  return Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1)));
}
