/** Jest: TypeScript through ts-jest, tests under test/. Slow suites (real nix, sshd, swupdate) set their own timeouts. */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: { warnOnly: false }, isolatedModules: false }] },
  testTimeout: 60000,
  maxWorkers: 2,
  // Failures with circular error objects (child_process errors) would reach jest as a JSON error.
  setupFilesAfterEnv: ["<rootDir>/test/setup/plain-errors.ts"],
};
