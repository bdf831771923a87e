# Flake for users with nixpkgs: wires nixpkgs into the image expressions under nix/.
#
#   nix flake lock                      # first use: pins nixpkgs in flake.lock (commit it)
#   nix eval --raw .#lib.nixpkgsPath    # the pinned nixpkgs source, for lib/image/compose.ts (pkgs: { nixpkgs })
#
# Outputs:
#   lib.nixpkgsPath                      store path of the locked nixpkgs source
#   lib.<system>.mkNodeImage args        nix/image.nix with that system's pkgs (args as documented there)
#   lib.<system>.nodeImageFromJson path  nix/node.nix's JSON input format, for a file inside the flake
{
  description = "isar-k3s: per-node images composed from ISAR artifacts";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      perSystem = system:
        let pkgs = nixpkgs.legacyPackages.${system};
        in {
          mkNodeImage = args: import ./nix/image.nix ({ inherit pkgs; } // args);
          nodeImageFromJson = inputFile: import ./nix/node.nix {
            inherit inputFile system;
            nixpkgs = nixpkgs.outPath;
          };
        };
    in
    {
      lib = { nixpkgsPath = nixpkgs.outPath; }
        // builtins.listToAttrs (map (s: { name = s; value = perSystem s; }) systems);
    };
}
