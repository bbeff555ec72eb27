// One lint setup for every part of Tether.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: ["**/dist/**", "**/node_modules/**", "coverage/**", ".tether/**", "charts/**", "**/.scratch/**"],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      // Type-aware linting over sources and tests: each part's tsconfig.lint.json includes both.
      parserOptions: {
        project: [
          "./tsconfig.lint.json",
          "./operator/tsconfig.lint.json",
          "./sidecar/tsconfig.lint.json",
          "./envoy/tsconfig.lint.json",
          "./xds/tsconfig.lint.json",
          "./e2e/tsconfig.lint.json",
          "./bench/tsconfig.lint.json",
        ],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/explicit-module-boundary-types": "error",
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/restrict-template-expressions": [
        "error",
        { allowNumber: true, allowBoolean: true },
      ],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      complexity: ["error", 25],
      "max-depth": ["error", 4],
    },
  },
  {
    files: ["**/*.test.ts", "**/test/**/*.ts"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/explicit-module-boundary-types": "off",
    },
  },
  {
    // Schema builders return zod types whose inferred shape *is* the API; spelling them out would
    // duplicate every field. The types users see (AgentSpec, …) are exported explicitly.
    files: ["operator/src/api/common.ts"],
    rules: { "@typescript-eslint/explicit-module-boundary-types": "off" },
  },
  {
    // Named schema types: `interface ClusterSchema extends ClusterSchemaType {}` (see envoy/src/schema.ts).
    files: ["envoy/src/schema.ts"],
    rules: {
      "@typescript-eslint/no-empty-object-type": ["error", { allowInterfaces: "with-single-extends" }],
    },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
);
