import { Liquid, type Template } from 'liquidjs';

/**
 * Template rendering. Bodies in the Go text/template style (`{{ .name }}`, `{{ if .x }}`,
 * `{{ range .items }}`) are translated once to Liquid; everything runs on LiquidJS, which
 * evaluates no code, reads no files, and fails on a missing variable instead of printing nothing.
 */
export type TemplateEngine = 'go' | 'liquid';

const liquid = new Liquid({
  strictVariables: true,
  // A condition on an absent variable is false (as in Go templates); only printing one fails.
  lenientIf: true,
  strictFilters: true,
  ownPropertyOnly: true,
  // Include and render tags may only see this empty in-memory map, never the file system.
  templates: {},
});

const GO_ACTION = /\{\{(-?)\s*(.*?)\s*(-?)\}\}/gs;
const GO_HINT = /\{\{-?\s*(\.|\$\.|if\s|range\s|end\b|else\b|\/\*)/;

export class TemplateSyntaxError extends Error {}

/** Which engine a template text is written for, when its author did not say. */
export function detectEngine(...texts: string[]): TemplateEngine {
  return texts.some((t) => GO_HINT.test(t)) ? 'go' : 'liquid';
}

/** Translates the Go template subset (fields, if/else if/else, range, not/eq/ne, comments) to Liquid. */
export function goToLiquid(text: string): string {
  const stack: ('if' | 'for')[] = [];
  const loopVars: string[] = [];
  const ref = (token: string): string => {
    if (token === '.') {
      const v = loopVars.at(-1);
      if (!v) throw new TemplateSyntaxError('"." outside range');
      return v;
    }
    if (token.startsWith('$.')) return token.slice(2);
    if (token.startsWith('.')) {
      const v = loopVars.at(-1);
      return v ? `${v}${token}` : token.slice(1);
    }
    if (/^"([^"\\]|\\.)*"$/.test(token) || /^-?\d+(\.\d+)?$/.test(token) || token === 'true' || token === 'false') {
      return token;
    }
    throw new TemplateSyntaxError(`unsupported template expression "${token}"`);
  };
  const condition = (expr: string): string => {
    const parts = expr.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
    const [head, a, b] = parts;
    if (head === 'not' && parts.length === 2) return `${ref(a!)} == blank`;
    if ((head === 'eq' || head === 'ne') && parts.length === 3) return `${ref(a!)} ${head === 'eq' ? '==' : '!='} ${ref(b!)}`;
    if (parts.length === 1) return ref(head!);
    throw new TemplateSyntaxError(`unsupported condition "${expr}"`);
  };
  const out = text.replace(GO_ACTION, (_m, lt: string, action: string, rt: string) => {
    const open = (tag: string) => `{%${lt} ${tag} ${rt}%}`;
    if (action.startsWith('/*')) return '';
    if (action.startsWith('if ')) {
      stack.push('if');
      return open(`if ${condition(action.slice(3))}`);
    }
    if (action.startsWith('else if ')) return open(`elsif ${condition(action.slice(8))}`);
    if (action === 'else') return open('else');
    if (action.startsWith('range ')) {
      const source = ref(action.slice(6).trim());
      const v = `item${loopVars.length}`;
      loopVars.push(v);
      stack.push('for');
      // Ranging over an absent value runs no iteration (as in Go), hence the lenient `if` around it.
      return `${open(`if ${source}`)}${open(`for ${v} in ${source}`)}`;
    }
    if (action === 'end') {
      const kind = stack.pop();
      if (!kind) throw new TemplateSyntaxError('"end" without "if" or "range"');
      if (kind === 'for') loopVars.pop();
      return kind === 'if' ? open('endif') : `${open('endfor')}${open('endif')}`;
    }
    return `{{${lt} ${ref(action)} ${rt}}}`;
  });
  if (stack.length) throw new TemplateSyntaxError(`unclosed "${stack.at(-1) === 'for' ? 'range' : 'if'}"`);
  return out;
}

const MAX_CACHED = 2_000;
const cache = new Map<string, Template[]>();

/** Parses (and caches) a template; throws TemplateSyntaxError with the reason. */
export function compile(text: string, engine: TemplateEngine): Template[] {
  const key = `${engine}\0${text}`;
  const hit = cache.get(key);
  if (hit) return hit;
  let parsed: Template[];
  try {
    parsed = liquid.parse(engine === 'go' ? goToLiquid(text) : text);
  } catch (error) {
    if (error instanceof TemplateSyntaxError) throw error;
    throw new TemplateSyntaxError((error as Error).message.split('\n')[0]);
  }
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  cache.set(key, parsed);
  return parsed;
}

/** Renders with `params`; a missing variable or a failing filter throws with the reason. */
export function render(text: string, engine: TemplateEngine, params: Record<string, unknown>): string {
  if (!text.includes('{')) return text;
  return liquid.renderSync(compile(text, engine), params) as string;
}
