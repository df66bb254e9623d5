// The web APIs StarlingMonkey (componentize-js's engine) provides that the SDK uses. Declared
// here so type checks need neither the DOM nor Node's types.
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string);
  decode(input?: Uint8Array): string;
}
declare const console: {
  log(...data: unknown[]): void;
  error(...data: unknown[]): void;
  warn(...data: unknown[]): void;
};
