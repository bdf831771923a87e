import { generateToken } from "../../lib/k3s/token";

test("tokens are long, alphanumeric, different every time and unbiased enough to use every symbol", () => {
  const a = generateToken(48);
  const b = generateToken(48);
  expect(a).toMatch(/^[A-Za-z0-9]{48}$/);
  expect(a).not.toBe(b);
  const seen = new Set(generateToken(256) + generateToken(256) + generateToken(256));
  expect(seen.size).toBeGreaterThan(55); // 768 draws over 62 symbols: all but a few appear
  expect(() => generateToken(8)).toThrow(/32 to 256/);
});
