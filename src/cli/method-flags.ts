/**
 * Command-line flags for method options, generated from the method registry's schemas: every
 * option of every method becomes one flag (camelCase key → --kebab-case), its help lists the
 * methods that take it with their defaults. Values are validated per method by resolveOptions.
 */
import { Option, type Command } from 'commander';
import { methods, methodNames } from '../methods/registry.js';
import type { OptionSpec, QuantMethod } from '../quant/method.js';
import { floatArg, intArg } from './options.js';

/** Flags whose name follows the official GPTQ scripts rather than the schema key. */
const FLAG_ALIASES: Readonly<Record<string, string>> = { percdamp: 'damp' };

export function flagName(key: string): string {
  return FLAG_ALIASES[key] ?? key.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`);
}

/** commander's attribute name for a flag (--group-size → groupSize). */
function attributeName(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase());
}

interface FlagInfo {
  key: string;
  spec: OptionSpec;
  /** method name → its default */
  defaults: Map<string, unknown>;
}

function collectFlags(): FlagInfo[] {
  const flags = new Map<string, FlagInfo>();
  for (const name of methodNames) {
    const m = methods[name] as QuantMethod<object>;
    for (const [key, spec] of Object.entries(m.options as Record<string, OptionSpec>)) {
      const f = flags.get(key) ?? { key, spec, defaults: new Map() };
      f.defaults.set(name, (m.defaults as Record<string, unknown>)[key]);
      flags.set(key, f);
    }
  }
  return [...flags.values()];
}

function describeSpec(f: FlagInfo): string {
  const s = f.spec;
  const range = s.kind === 'int' && s.choices ? ` (${s.choices.join('|')})` : '';
  const defaults = [...f.defaults].map(([m, d]) => `${m}: ${String(d)}`).join(', ');
  return `${s.help}${range}; default ${defaults}`;
}

/** Adds one flag per method option to `cmd`. */
export function addMethodFlags(cmd: Command): void {
  for (const f of collectFlags()) {
    const flag = flagName(f.key);
    const s = f.spec;
    let o: Option;
    if (s.kind === 'boolean') o = new Option(`--${flag}`, describeSpec(f));
    else if (s.kind === 'string') o = new Option(`--${flag} <s>`, describeSpec(f));
    else {
      o = new Option(`--${flag} <${s.kind === 'int' ? 'n' : 'x'}>`, describeSpec(f));
      o.argParser(s.kind === 'int' ? intArg(s.min ?? Number.MIN_SAFE_INTEGER, s.max) : floatArg(s.min ?? -Infinity, s.max ?? Infinity));
    }
    cmd.addOption(o);
  }
}

/** The method options the user gave on the command line, keyed by schema name (defaults are the method's). */
export function givenMethodOptions(opts: Record<string, unknown>): Record<string, unknown> {
  const given: Record<string, unknown> = {};
  for (const f of collectFlags()) {
    const v = opts[attributeName(flagName(f.key))];
    if (v !== undefined) given[f.key] = v;
  }
  return given;
}

export function methodHelp(): string {
  return methodNames.map((n) => `  ${n.padEnd(6)} ${(methods[n] as QuantMethod<object>).describe}`).join('\n');
}
