// A small schema language from which both halves of the API come: the OpenAPI v3 schema with its
// CEL rules (x-kubernetes-validations) that the CRDs in crds/ carry, and a parser that refuses
// exactly what the API server refuses, with the same field paths and messages, for files that no
// API server has seen (the CLI) and as the controller's second gate.
//
// The parser follows the API server's order (k8s.io/apiextensions-apiserver, registry/customresource
// strategy.go Validate): strict decoding first (unknown fields refuse the object before anything
// else is checked), then the OpenAPI schema (kube-openapi's validators: type, bounds, enum, format,
// required) and list-type sets, then, only when none of those errors is "blocking" (required,
// enum, maxLength, maxItems or a type error), every CEL rule through its TypeScript twin. A node's
// type comes from zod, which builds the typed value once the object passed, so that TypeScript
// narrows the unions and no cast touches parsed input.

import { z } from "zod";
import { CelEvalError, TwinError, codePoints, goQuote } from "./cel.ts";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isJsonObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `o[name]` if `o` has it as its own property (never something of Object.prototype). */
export function own(o: JsonObject, name: string): Json | undefined {
  return Object.hasOwn(o, name) ? o[name] : undefined;
}

/** Whether parser output (YAML or JSON) is a JSON value: plain objects, arrays, strings, finite
 * numbers, booleans and null all the way down. */
export function isJson(v: unknown): v is Json {
  if (v === null || typeof v === "boolean" || typeof v === "string") return true;
  if (typeof v === "number") return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(isJson);
  if (typeof v !== "object") return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return (proto === Object.prototype || proto === null) && Object.values(v).every(isJson);
}

/** Parser output as Json, or undefined when it holds something JSON cannot. */
export function toJson(v: unknown): Json | undefined {
  return isJson(v) ? v : undefined;
}

// ---------------------------------------------------------------------------------------------
// What a CRD carries.

/** A structural OpenAPI v3 schema as written in a CRD. */
export interface OpenApi {
  type?: "object" | "array" | "string" | "integer" | "boolean";
  description?: string;
  format?: string;
  enum?: readonly string[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  required?: readonly string[];
  properties?: Readonly<Record<string, OpenApi>>;
  additionalProperties?: OpenApi;
  items?: OpenApi;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: readonly string[];
  "x-kubernetes-map-type"?: "atomic" | "granular";
  "x-kubernetes-validations"?: readonly CelRule[];
}

/** An x-kubernetes-validations item. */
export interface CelRule {
  rule: string;
  message: string;
  messageExpression?: string;
  reason?:
    "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";
  fieldPath?: string;
}

/**
 * A CEL rule with its TypeScript twin. `holds` returns whether the rule holds for `self` (the
 * node's value as CEL sees it) and throws CelEvalError where CEL fails to evaluate. A transition
 * rule (one reading oldSelf) is evaluated on updates only; the parser, which sees single objects,
 * never evaluates it (`transition: true`).
 */
export interface Rule<S> {
  readonly rule: string;
  readonly message: string;
  readonly messageExpression?: { readonly cel: string; readonly twin: (self: S) => string };
  readonly holds: (self: S) => boolean;
  readonly transition?: true;
}

// ---------------------------------------------------------------------------------------------
// Field errors, as k8s.io/apimachinery's field.Error prints them (ErrorBody).

export type FieldErrorType =
  | "Required"
  | "NotSupported"
  | "TooLong"
  | "TooMany"
  | "TypeInvalid"
  | "Invalid"
  | "Duplicate"
  | "Forbidden"
  | "UnknownField";

export interface FieldError {
  readonly type: FieldErrorType;
  /** The field path as the API server prints it (`spec.scopes[0]`); "" for the whole object. */
  readonly field: string;
  /** The message after the path, as the API server's Status cause carries it. */
  readonly detail: string;
  /** The CEL rule that failed, for rule errors (coverage tests use it). */
  readonly rule?: string;
}

/** field.ErrorTypeX.String() */
const TYPE_TEXT: Readonly<Record<FieldErrorType, string>> = {
  Required: "Required value",
  NotSupported: "Unsupported value",
  TooLong: "Too long",
  TooMany: "Too many",
  TypeInvalid: "Invalid value",
  Invalid: "Invalid value",
  Duplicate: "Duplicate value",
  Forbidden: "Forbidden",
  UnknownField: "unknown field",
};

/** A bad value as ErrorBody prints it; OMIT for field.OmitValueType. */
export const OMIT: unique symbol = Symbol("omit");
type BadValue = Json | typeof OMIT;

function goValue(v: Json): string {
  if (typeof v === "string") return goQuote(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return goJson(v);
}

/** encoding/json.Marshal: map keys sorted, HTML-escaped like Go's default encoder. */
function goJson(v: Json): string {
  if (v === null || typeof v !== "object") {
    return JSON.stringify(v)
      .replace(/</g, "\\u003c")
      .replace(/>/g, "\\u003e")
      .replace(/&/g, "\\u0026");
  }
  if (Array.isArray(v)) return `[${v.map(goJson).join(",")}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${goJson(k)}:${goJson(v[k] ?? null)}`).join(",")}}`;
}

function body(type: FieldErrorType, value: BadValue, detail: string): string {
  let s = TYPE_TEXT[type];
  if (
    type !== "Required" &&
    type !== "Forbidden" &&
    type !== "TooLong" &&
    type !== "UnknownField" &&
    value !== OMIT
  ) {
    s += `: ${goValue(value)}`;
  }
  return detail === "" ? s : `${s}: ${detail}`;
}

export function fieldError(
  type: FieldErrorType,
  field: string,
  value: BadValue,
  detail: string,
  rule?: string,
): FieldError {
  return rule === undefined
    ? { type, field, detail: body(type, value, detail) }
    : { type, field, detail: body(type, value, detail), rule };
}

/** The blocking error types: when any is present, the API server runs no CEL rule at all. */
export const BLOCKING: ReadonlySet<FieldErrorType> = new Set([
  "NotSupported",
  "Required",
  "TooLong",
  "TooMany",
  "TypeInvalid",
]);

export const RULES_NOT_CHECKED =
  "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

// Field paths as field.Path prints them.
export const child = (path: string, name: string): string =>
  path === "" ? name : `${path}.${name}`;
export const index = (path: string, i: number): string => `${path}[${i}]`;

/** kube-openapi's name for a schema type of a JSON value. */
function jsonType(v: Json): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v === "object" ? "object" : typeof v;
}

// ---------------------------------------------------------------------------------------------
// Nodes.

/** Everything a node is checked against, collected in one pass per phase. */
export interface Checks {
  readonly errors: FieldError[];
}

export abstract class Node<T> {
  abstract readonly zod: z.ZodType<T>;
  /** The node's OpenAPI schema, including its CEL rules. */
  abstract openapi(): OpenApi;
  /** Strict decoding: the paths of fields the schema does not know. */
  unknownFields(_v: Json, _path: string, _out: string[]): void {}
  /** The OpenAPI schema's checks (kube-openapi), and list-type sets. */
  abstract schemaErrors(v: Json, path: string, out: FieldError[]): void;
  /** Every CEL rule of this node and its descendants; only called when no blocking error exists. */
  abstract ruleErrors(v: Json, path: string, out: FieldError[]): void;
  /** Every rule of this node and its descendants, for coverage tests. */
  abstract allRules(): readonly string[];
}

function typeError(path: string, expected: string, v: Json): FieldError {
  const actual = jsonType(v);
  return fieldError(
    "TypeInvalid",
    path,
    actual,
    `${path} in body must be of type ${expected}: ${goQuote(actual)}`,
  );
}

function evaluateRules<S>(
  rules: readonly Rule<S>[],
  self: S,
  badValue: BadValue,
  path: string,
  out: FieldError[],
  schemaType: string,
  /** A reason the rule cannot be evaluated at all, found before its twin runs. */
  unreadable: (r: Rule<S>) => string | undefined = () => undefined,
): void {
  for (const r of rules) {
    if (r.transition === true) continue;
    const why = unreadable(r);
    if (why !== undefined) {
      out.push(
        fieldError("Invalid", path, schemaType, `${why} evaluating rule: ${ruleName(r)}`, r.rule),
      );
      continue;
    }
    let holds: boolean;
    try {
      holds = r.holds(self);
    } catch (e) {
      if (!(e instanceof CelEvalError)) {
        throw new TwinError(`the twin of ${r.rule} failed`, { cause: e });
      }
      out.push(
        fieldError(
          "Invalid",
          path,
          schemaType,
          `${e.message} evaluating rule: ${ruleName(r)}`,
          r.rule,
        ),
      );
      continue;
    }
    if (holds) continue;
    const message = r.messageExpression === undefined ? r.message : r.messageExpression.twin(self);
    out.push(fieldError("Invalid", path, badValue, message, r.rule));
  }
}

/** How the API server names a rule in an evaluation error (ruleErrorString): its message. */
function ruleName<S>(r: Rule<S>): string {
  return (r.message === "" ? r.rule : r.message).trim();
}

function renderRules<S>(rules: readonly Rule<S>[]): CelRule[] {
  return rules.map((r) => ({
    rule: r.rule,
    message: r.message,
    ...(r.messageExpression === undefined ? {} : { messageExpression: r.messageExpression.cel }),
  }));
}

function withRules(s: OpenApi, rules: readonly Rule<never>[]): OpenApi {
  return rules.length === 0 ? s : { ...s, "x-kubernetes-validations": renderRules(rules) };
}

// --- strings -----------------------------------------------------------------------------------

export interface StringOptions<S> {
  readonly description: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  /** An OpenAPI pattern (ECMA 262 in the schema, RE2 in the API server; keep to their overlap). */
  readonly pattern?: string;
  readonly rules?: readonly Rule<S>[];
}

export class StringNode<T extends string = string> extends Node<T> {
  readonly zod: z.ZodType<T>;
  readonly #o: StringOptions<string> & { readonly enum?: readonly T[]; format?: "date-time" };
  constructor(
    zod: z.ZodType<T>,
    o: StringOptions<string> & { readonly enum?: readonly T[]; format?: "date-time" },
  ) {
    super();
    this.zod = zod;
    this.#o = o;
  }
  openapi(): OpenApi {
    const o = this.#o;
    const s: OpenApi = { type: "string", description: o.description };
    if (o.format !== undefined) s.format = o.format;
    if (o.enum !== undefined) s.enum = o.enum;
    if (o.minLength !== undefined) s.minLength = o.minLength;
    if (o.maxLength !== undefined) s.maxLength = o.maxLength;
    if (o.pattern !== undefined) s.pattern = o.pattern;
    return withRules(s, o.rules ?? []);
  }
  schemaErrors(v: Json, path: string, out: FieldError[]): void {
    const o = this.#o;
    if (typeof v !== "string") out.push(typeError(path, "string", v));
    else checkLength(v, path, o, out);
    if (o.enum !== undefined && !o.enum.some((e) => e === v)) {
      out.push(
        fieldError(
          "NotSupported",
          path,
          v,
          `supported values: ${o.enum.map((e) => goQuote(e)).join(", ")}`,
        ),
      );
    }
  }
  ruleErrors(v: Json, path: string, out: FieldError[]): void {
    if (typeof v === "string") evaluateRules(this.#o.rules ?? [], v, v, path, out, "string");
  }
  allRules(): readonly string[] {
    return (this.#o.rules ?? []).map((r) => r.rule);
  }
}

function checkLength(
  v: string,
  path: string,
  o: { readonly minLength?: number; readonly maxLength?: number; readonly pattern?: string },
  out: FieldError[],
): void {
  // kube-openapi's stringValidator reports the first of maxLength, minLength, pattern that fails.
  const n = codePoints(v);
  if (o.maxLength !== undefined && n > o.maxLength) {
    out.push(fieldError("TooLong", path, OMIT, `may not be more than ${o.maxLength} bytes`));
  } else if (o.minLength !== undefined && n < o.minLength) {
    out.push(
      fieldError(
        "Invalid",
        path,
        v,
        `${path} in body should be at least ${o.minLength} chars long`,
      ),
    );
  } else if (o.pattern !== undefined && !new RegExp(o.pattern, "u").test(v)) {
    out.push(fieldError("Invalid", path, v, `${path} in body should match '${o.pattern}'`));
  }
}

/** The `byte` format's check (kube-openapi strfmt, govalidator.IsBase64): padded standard base64,
 * at least one group, nothing else (no line breaks). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$/;

/** base64 data, which CEL sees as bytes. The parsed value stays the base64 text. */
export class BytesNode extends Node<string> {
  readonly zod = z.string();
  readonly #o: StringOptions<Uint8Array>;
  constructor(o: StringOptions<Uint8Array>) {
    super();
    this.#o = o;
  }
  openapi(): OpenApi {
    const o = this.#o;
    const s: OpenApi = { type: "string", description: o.description, format: "byte" };
    if (o.minLength !== undefined) s.minLength = o.minLength;
    if (o.maxLength !== undefined) s.maxLength = o.maxLength;
    return withRules(s, o.rules ?? []);
  }
  schemaErrors(v: Json, path: string, out: FieldError[]): void {
    if (typeof v !== "string") {
      out.push(typeError(path, "string", v));
      return;
    }
    checkLength(v, path, this.#o, out);
    if (!BASE64.test(v)) {
      out.push(
        fieldError("TypeInvalid", path, v, `${path} in body must be of type byte: ${goQuote(v)}`),
      );
    }
  }
  ruleErrors(v: Json, path: string, out: FieldError[]): void {
    if (typeof v !== "string") return;
    // The API server hands CEL a byte field decoded with the URL-safe alphabet (kube-openapi
    // strfmt.Base64.UnmarshalText), so a value whose standard base64 holds '+' or '/' makes every
    // rule of the field fail to evaluate. Base64 of PEM text never does (its last sextets would
    // need '>', '?', '~' or DEL in the text); binary data usually does.
    const why = BytesNode.unreadable(v);
    evaluateRules(this.#o.rules ?? [], Buffer.from(v, "base64"), v, path, out, "string", () => why);
  }
  allRules(): readonly string[] {
    return (this.#o.rules ?? []).map((r) => r.rule);
  }
  /** Why CEL cannot read the value `v` (base64 text), or undefined when it can. */
  static unreadable(v: Json | undefined): string | undefined {
    if (typeof v !== "string") return undefined;
    const bad = /[+/]/.exec(v);
    return bad === null
      ? undefined
      : `Invalid byte formatted string ${v}: illegal base64 data at input byte ${bad.index}`;
  }
}

// --- other scalars -----------------------------------------------------------------------------

export class IntegerNode extends Node<number> {
  readonly zod = z.number().int();
  readonly #o: { description: string; format: "int32" | "int64"; minimum?: number };
  constructor(o: { description: string; format: "int32" | "int64"; minimum?: number }) {
    super();
    this.#o = o;
  }
  openapi(): OpenApi {
    const s: OpenApi = { type: "integer", format: this.#o.format };
    if (this.#o.minimum !== undefined) s.minimum = this.#o.minimum;
    s.description = this.#o.description;
    return s;
  }
  schemaErrors(v: Json, path: string, out: FieldError[]): void {
    if (typeof v !== "number" || !Number.isInteger(v)) out.push(typeError(path, "integer", v));
    else if (this.#o.minimum !== undefined && v < this.#o.minimum) {
      out.push(
        fieldError(
          "Invalid",
          path,
          v,
          `${path} in body should be greater than or equal to ${this.#o.minimum}`,
        ),
      );
    }
  }
  ruleErrors(): void {}
  allRules(): readonly string[] {
    return [];
  }
}

export class BooleanNode extends Node<boolean> {
  readonly zod = z.boolean();
  readonly #description: string;
  constructor(description: string) {
    super();
    this.#description = description;
  }
  openapi(): OpenApi {
    return { type: "boolean", description: this.#description };
  }
  schemaErrors(v: Json, path: string, out: FieldError[]): void {
    if (typeof v !== "boolean") out.push(typeError(path, "boolean", v));
  }
  ruleErrors(): void {}
  allRules(): readonly string[] {
    return [];
  }
}

// --- arrays ------------------------------------------------------------------------------------

export interface ArrayOptions {
  readonly description: string;
  readonly minItems?: number;
  readonly maxItems: number;
  readonly listType?: "atomic" | "set" | "map";
  readonly mapKeys?: readonly string[];
  readonly rules?: readonly Rule<readonly Json[]>[];
}

export class ArrayNode<T> extends Node<T[]> {
  readonly zod: z.ZodType<T[]>;
  readonly #items: Node<T>;
  readonly #o: ArrayOptions;
  constructor(items: Node<T>, o: ArrayOptions) {
    super();
    this.#items = items;
    this.#o = o;
    this.zod = z.array(items.zod);
  }
  openapi(): OpenApi {
    const o = this.#o;
    const s: OpenApi = { type: "array", description: o.description };
    if (o.minItems !== undefined) s.minItems = o.minItems;
    s.maxItems = o.maxItems;
    if (o.listType !== undefined) s["x-kubernetes-list-type"] = o.listType;
    if (o.mapKeys !== undefined) s["x-kubernetes-list-map-keys"] = o.mapKeys;
    s.items = this.#items.openapi();
    return withRules(s, o.rules ?? []);
  }
  override unknownFields(v: Json, path: string, out: string[]): void {
    if (!Array.isArray(v)) return;
    v.forEach((x, i) => {
      this.#items.unknownFields(x, index(path, i), out);
    });
  }
  schemaErrors(v: Json, path: string, out: FieldError[]): void {
    if (!Array.isArray(v)) {
      out.push(typeError(path, "array", v));
      return;
    }
    v.forEach((x, i) => {
      this.#items.schemaErrors(x, index(path, i), out);
    });
    const o = this.#o;
    if (o.minItems !== undefined && v.length < o.minItems) {
      out.push(
        fieldError(
          "Invalid",
          path,
          v.length,
          `${path} in body should have at least ${o.minItems} items`,
        ),
      );
    }
    if (v.length > o.maxItems) {
      out.push(
        fieldError(
          "TooMany",
          path,
          v.length,
          `must have at most ${o.maxItems} ${o.maxItems === 1 ? "item" : "items"}`,
        ),
      );
    }
    if (o.listType === "set") {
      // structurallisttype.ValidateListSetsAndMaps: each repeated item is a Duplicate.
      const seen = new Set<string>();
      v.forEach((x, i) => {
        const key = typeof x === "string" ? `s${x}` : goJson(x);
        if (seen.has(key)) out.push(fieldError("Duplicate", index(path, i), x, ""));
        seen.add(key);
      });
    }
  }
  ruleErrors(v: Json, path: string, out: FieldError[]): void {
    if (!Array.isArray(v)) return;
    v.forEach((x, i) => {
      this.#items.ruleErrors(x, index(path, i), out);
    });
    evaluateRules(this.#o.rules ?? [], v, OMIT, path, out, "array");
  }
  allRules(): readonly string[] {
    return [...this.#items.allRules(), ...(this.#o.rules ?? []).map((r) => r.rule)];
  }
}

// --- maps --------------------------------------------------------------------------------------

export class MapNode<T> extends Node<Record<string, T>> {
  readonly zod: z.ZodType<Record<string, T>>;
  readonly #values: Node<T>;
  readonly #o: { description: string; maxProperties: number; atomic?: boolean };
  /** `atomic`: the API server tracks the map as one field (managedFields lists no key). */
  constructor(
    values: Node<T>,
    o: { description: string; maxProperties: number; atomic?: boolean },
  ) {
    super();
    this.#values = values;
    this.#o = o;
    this.zod = z.record(z.string(), values.zod);
  }
  openapi(): OpenApi {
    return {
      type: "object",
      description: this.#o.description,
      maxProperties: this.#o.maxProperties,
      additionalProperties: this.#values.openapi(),
      ...(this.#o.atomic === true ? { "x-kubernetes-map-type": "atomic" as const } : {}),
    };
  }
  override unknownFields(v: Json, path: string, out: string[]): void {
    if (isJsonObject(v)) {
      for (const [k, x] of Object.entries(v)) this.#values.unknownFields(x, child(path, k), out);
    }
  }
  schemaErrors(v: Json, path: string, out: FieldError[]): void {
    if (!isJsonObject(v)) {
      out.push(typeError(path, "object", v));
      return;
    }
    const n = Object.keys(v).length;
    if (n > this.#o.maxProperties) {
      out.push(fieldError("TooMany", path, n, `must have at most ${this.#o.maxProperties} items`));
    }
    for (const [k, x] of Object.entries(v)) this.#values.schemaErrors(x, child(path, k), out);
  }
  ruleErrors(v: Json, path: string, out: FieldError[]): void {
    if (!isJsonObject(v)) return;
    for (const [k, x] of Object.entries(v)) this.#values.ruleErrors(x, child(path, k), out);
  }
  allRules(): readonly string[] {
    return this.#values.allRules();
  }
}

// --- objects -----------------------------------------------------------------------------------

/** One property: a node and whether it is required. */
export interface Prop<T> {
  readonly node: Node<T>;
  readonly required: boolean;
}
export const required = <T>(node: Node<T>): Prop<T> & { readonly required: true } => ({
  node,
  required: true,
});
export const optional = <T>(node: Node<T>): Prop<T> & { readonly required: false } => ({
  node,
  required: false,
});

type AnyProp = Prop<never> | Prop<unknown>;
export type Props = Readonly<Record<string, AnyProp>>;

type PropValue<P> = P extends Prop<infer T> ? T : never;
type RequiredKeys<P extends Props> = {
  [K in keyof P]: P[K] extends { readonly required: true } ? K : never;
}[keyof P];
type OptionalKeys<P extends Props> = Exclude<keyof P, RequiredKeys<P>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type ObjectOf<P extends Props> = Simplify<
  { [K in RequiredKeys<P>]: PropValue<P[K]> } & { [K in OptionalKeys<P>]?: PropValue<P[K]> }
>;

/** The zod shape of a set of properties: required ones as they are, optional ones optional. */
function zodShape(props: Props): Record<string, z.ZodType> {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, p] of Object.entries(props)) {
    shape[name] = p.required ? p.node.zod : p.node.zod.optional();
  }
  return shape;
}

export interface ObjectOptions {
  readonly description: string;
  readonly rules?: readonly Rule<JsonObject>[];
}

/** Properties checked in declaration order (kube-openapi walks a Go map; the order of errors is
 * not part of the API). */
abstract class ObjectLike<T> extends Node<T> {
  /** In declaration order; a Map, so that no field name can reach Object.prototype. */
  protected readonly props: ReadonlyMap<string, AnyProp>;
  protected readonly options: ObjectOptions;
  constructor(props: Props, options: ObjectOptions) {
    super();
    this.props = new Map(Object.entries(props));
    this.options = options;
  }
  openapi(): OpenApi {
    const s: OpenApi = { type: "object", description: this.options.description };
    const req = [...this.props].filter(([, p]) => p.required).map(([n]) => n);
    if (req.length > 0) s.required = req;
    const properties: Record<string, OpenApi> = {};
    for (const [n, p] of this.props) properties[n] = p.node.openapi();
    s.properties = properties;
    return withRules(s, this.options.rules ?? []);
  }
  override unknownFields(v: Json, path: string, out: string[]): void {
    if (!isJsonObject(v)) return;
    for (const k of Object.keys(v)) {
      const p = this.props.get(k);
      if (p === undefined) out.push(child(path, k));
      else p.node.unknownFields(v[k] ?? null, child(path, k), out);
    }
  }
  schemaErrors(v: Json, path: string, out: FieldError[]): void {
    if (!isJsonObject(v)) {
      out.push(typeError(path, "object", v));
      return;
    }
    for (const [name, p] of this.props) {
      const x = own(v, name);
      if (x !== undefined && x !== null) p.node.schemaErrors(x, child(path, name), out);
    }
    for (const [name, p] of this.props) {
      const x = own(v, name);
      if (p.required && (x === undefined || x === null)) {
        out.push(fieldError("Required", child(path, name), OMIT, ""));
      }
    }
  }
  ruleErrors(v: Json, path: string, out: FieldError[]): void {
    if (!isJsonObject(v)) return;
    for (const [name, p] of this.props) {
      const x = own(v, name);
      if (x !== undefined && x !== null) p.node.ruleErrors(x, child(path, name), out);
    }
    // A rule that reads a byte field CEL cannot decode (even through has()) fails to evaluate.
    const unreadable = new Map<string, string>();
    for (const [name, p] of this.props) {
      const why = p.node instanceof BytesNode ? BytesNode.unreadable(own(v, name)) : undefined;
      if (why !== undefined) unreadable.set(name, why);
    }
    evaluateRules(this.options.rules ?? [], v, OMIT, path, out, "object", (r) => {
      for (const [name, why] of unreadable) {
        if (new RegExp(`\\bself\\.${name}\\b`).test(r.rule)) return why;
      }
      return undefined;
    });
  }
  allRules(): readonly string[] {
    return [
      ...[...this.props.values()].flatMap((p) => p.node.allRules()),
      ...(this.options.rules ?? []).map((r) => r.rule),
    ];
  }
}

export class ObjectNode<P extends Props> extends ObjectLike<ObjectOf<P>> {
  readonly zod: z.ZodType<ObjectOf<P>>;
  constructor(props: P, options: ObjectOptions) {
    super(props, options);
    // The shape is built from `props`, whose static type is ObjectOf<P>: zod cannot see through
    // the loop in zodShape, so the schema (not any parsed value) is typed here.
    this.zod = z.strictObject(zodShape(props)) as unknown as z.ZodType<ObjectOf<P>>;
  }
}

/** `has(self.x)` for an object CEL sees. */
export function has(self: JsonObject, name: string): boolean {
  const x = own(self, name);
  return x !== undefined && x !== null;
}

// --- unions ------------------------------------------------------------------------------------

/** The members of a discriminated union: discriminator value -> the properties that value
 * requires (every other member's properties are forbidden). */
export type Members = Readonly<Record<string, Props>>;
export type UnionOf<D extends string, M extends Members> = {
  [V in keyof M & string]: Simplify<{ [K in D]: V } & ObjectOf<M[V]>>;
}[keyof M & string];

/**
 * A union written as the API server sees it: one object with a discriminator enum and every
 * member's block, plus one CEL rule per block ("<block> is required when <d> is <V>, and forbidden
 * otherwise", the OpenShift API's wording); and as TypeScript sees it: a discriminated union.
 */
export class UnionNode<D extends string, M extends Members> extends ObjectLike<UnionOf<D, M>> {
  readonly zod: z.ZodType<UnionOf<D, M>>;
  constructor(
    discriminator: D,
    discriminatorNode: (values: readonly string[]) => Node<string>,
    members: M,
    options: ObjectOptions & { readonly required: boolean },
  ) {
    const values = Object.keys(members);
    const blocks: Record<string, AnyProp> = {};
    const rules: Rule<JsonObject>[] = [];
    for (const [value, props] of Object.entries(members)) {
      for (const [block, p] of Object.entries(props)) {
        // A block's presence is decided by the rule below, never by the schema.
        blocks[block] = optional(p.node);
        rules.push({
          rule: `has(self.${discriminator}) && self.${discriminator} == '${value}' ? has(self.${block}) : !has(self.${block})`,
          message: `${block} is required when ${discriminator} is ${value}, and forbidden otherwise`,
          holds: (self) => (own(self, discriminator) === value) === has(self, block),
        });
      }
    }
    const dProp = options.required
      ? required(discriminatorNode(values))
      : optional(discriminatorNode(values));
    super(
      { [discriminator]: dProp, ...blocks },
      { ...options, rules: [...rules, ...(options.rules ?? [])] },
    );
    const variants = Object.entries(members).map(([value, props]) =>
      z.strictObject({ [discriminator]: z.literal(value), ...zodShape(props) }),
    );
    const [first, ...rest] = variants;
    if (first === undefined) throw new SchemaDefinitionError("a union needs members");
    // As in ObjectNode: the static type of the members is UnionOf<D, M>.
    this.zod = (rest.length === 0
      ? first
      : z.discriminatedUnion(discriminator, [first, ...rest])) as unknown as z.ZodType<
      UnionOf<D, M>
    >;
  }
}

/** Exactly one of two properties (`has(self.a) != has(self.b)`), with common properties. */
export type OneOf<A extends string, B extends string, TA, TB, P extends Props> =
  Simplify<{ [K in A]: TA } & ObjectOf<P>> | Simplify<{ [K in B]: TB } & ObjectOf<P>>;

export class OneOfNode<
  A extends string,
  B extends string,
  TA,
  TB,
  P extends Props,
> extends ObjectLike<OneOf<A, B, TA, TB, P>> {
  readonly zod: z.ZodType<OneOf<A, B, TA, TB, P>>;
  constructor(
    a: readonly [A, Node<TA>],
    b: readonly [B, Node<TB>],
    common: P,
    options: ObjectOptions & { readonly message: string },
  ) {
    const [an, anode] = a;
    const [bn, bnode] = b;
    const rule: Rule<JsonObject> = {
      rule: `has(self.${an}) != has(self.${bn})`,
      message: options.message,
      holds: (self) => has(self, an) !== has(self, bn),
    };
    super(
      { [an]: optional(anode), [bn]: optional(bnode), ...common },
      { description: options.description, rules: [rule, ...(options.rules ?? [])] },
    );
    const shape = zodShape(common);
    this.zod = z.union([
      z.strictObject({ [an]: anode.zod, ...shape }),
      z.strictObject({ [bn]: bnode.zod, ...shape }),
    ]) as unknown as z.ZodType<OneOf<A, B, TA, TB, P>>;
  }
}

/** A mistake in a schema definition (a bug, never bad input). */
export class SchemaDefinitionError extends Error {
  override readonly name = "SchemaDefinitionError";
}

// ---------------------------------------------------------------------------------------------
// Running a root node.

export type Verdict<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly errors: readonly FieldError[] };

/**
 * Checks `v` as the API server checks a create: unknown fields first, then the schema, then the
 * CEL rules when nothing blocks them; `extra` adds the errors the API server finds outside the
 * schema (object metadata), which take part in the blocking decision too.
 */
export function check<T>(root: Node<T>, v: Json, extra: readonly FieldError[] = []): Verdict<T> {
  const unknown: string[] = [];
  root.unknownFields(v, "", unknown);
  if (unknown.length > 0) {
    return {
      ok: false,
      errors: unknown.map((f) => ({
        type: "UnknownField",
        field: f,
        detail: `unknown field ${goQuote(f)}`,
      })),
    };
  }
  const errors: FieldError[] = [...extra];
  root.schemaErrors(v, "", errors);
  if (errors.some((e) => BLOCKING.has(e.type))) {
    errors.push(fieldError("Invalid", "", null, RULES_NOT_CHECKED));
  } else {
    root.ruleErrors(v, "", errors);
  }
  if (errors.length > 0) return { ok: false, errors };
  const parsed = root.zod.safeParse(v);
  if (!parsed.success) {
    // The schema accepted what its own zod twin refuses: a bug in this module.
    throw new SchemaDefinitionError(`schema and type disagree: ${z.prettifyError(parsed.error)}`, {
      cause: parsed.error,
    });
  }
  return { ok: true, value: parsed.data };
}
