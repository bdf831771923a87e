/**
 * ESLint (flat config): typescript-eslint's recommended rules over the TypeScript tree, run by
 * `npm run lint` (scripts/test.sh runs it before jest; an error fails the test command).
 * Formatting is prettier's job (`npm run format:check`), so no stylistic rules here.
 */
const js = require("@eslint/js");
const tseslint = require("typescript-eslint");

module.exports = tseslint.config(
  { ignores: ["bin/**", "node_modules/**", ".lab/**", ".pulumi-*/**", ".cache/**", "**/*.js", "nix/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      // `_`-prefixed names are deliberately unused (destructuring a key away, required callback parameters)
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
    },
  },
  {
    // providers load lib/ with require() inside their methods (a serialized dynamic provider must not capture
    // modules); tests and the lab load modules lazily the same way
    files: ["providers/**/*.ts", "test/**/*.ts", "lab/**/*.ts"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // tests walk parsed documents (libconfig, YAML, state files) whose shape is what they check
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
);
