/**
 * Every quantization method, by name. Generic code (pipeline, CLI, help text) reads only this
 * table; a new method is registered here and nowhere else.
 */
import { UsageError } from '../io/errors.js';
import { resolveOptions, type QuantMethod } from '../quant/method.js';
import { aqlm } from './aqlm.js';
import { billm } from './billm.js';
import { dbell } from './dbell.js';
import { gptq } from './gptq.js';
import { rtn } from './rtn.js';
import { slim } from './slim.js';
import { slimPlus } from './slim-plus.js';

export const methods = {
  rtn,
  gptq,
  aqlm,
  slim,
  'slim+': slimPlus,
  billm,
  dbell,
} satisfies Record<string, QuantMethod<object>>;

export type MethodName = keyof typeof methods;

export const methodNames = Object.keys(methods) as MethodName[];

export function isMethodName(name: string): name is MethodName {
  return Object.prototype.hasOwnProperty.call(methods, name);
}

/** The method called `name`, its options resolved over the defaults (UsageError if invalid). */
export function getMethod(name: string, given: Record<string, unknown> = {}): { method: QuantMethod<object>; opts: object } {
  if (!isMethodName(name)) throw new UsageError(`unknown method '${name}' (methods: ${methodNames.join(', ')})`);
  const method: QuantMethod<object> = methods[name];
  return { method, opts: resolveOptions(method, given) };
}
