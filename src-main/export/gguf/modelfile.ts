// An Ollama Modelfile for an exported GGUF. Ollama templates are Go templates, not Jinja, so the model's chat
// template is rendered with marker messages and cut at the markers into what comes before and after each role's
// content; the Go template puts the same strings around .Content. Turns rendered by the model's own template and
// by this one are identical for system/user/assistant conversations.
import type { ChatTemplate } from '../../models/chat-template';
import type { LensTokenizer } from '../../models/tokenizer';

const MARK = (s: string) => `\u0001${s}\u0001`;

function commonSuffix(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[a.length - 1 - i] === b[b.length - 1 - i]) i++;
  return a.slice(a.length - i);
}
function commonPrefix(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return a.slice(0, i);
}

/** Split a render at markers: [before m0, between m0 and m1, …, after the last]. */
function cut(text: string, marks: string[]): string[] | null {
  const out: string[] = [];
  let at = 0;
  for (const m of marks) {
    const i = text.indexOf(m, at);
    if (i < 0) return null;
    out.push(text.slice(at, i));
    at = i + m.length;
  }
  out.push(text.slice(at));
  return out;
}

export interface RolePieces {
  /** once, before the first message when there is no system message (a default system prompt, say) */
  preamble: string;
  system: [string, string] | null;
  user: [string, string];
  assistant: [string, string];
  generation: string;
}

/** The strings a chat template puts around each role's content, or null when it does not render plain turns. */
export function rolePieces(t: ChatTemplate, bos: string | null): RolePieces | null {
  const noSys = (() => {
    try {
      return cut(
        t.render(
          [
            { role: 'user', content: MARK('U1') },
            { role: 'assistant', content: MARK('A1') },
            { role: 'user', content: MARK('U2') },
          ],
          { addGenerationPrompt: true },
        ),
        [MARK('U1'), MARK('A1'), MARK('U2')],
      );
    } catch {
      return null;
    }
  })();
  if (!noSys) return null;
  const [p0, q1, q2, q3] = noSys;
  const userPre = commonSuffix(p0, q2);
  const assistantSuf = q2.slice(0, q2.length - userPre.length);
  const userSuf = commonPrefix(q1, q3);
  const assistantPre = q1.slice(userSuf.length);
  const generation = q3.slice(userSuf.length);
  let preamble = p0.slice(0, p0.length - userPre.length);
  const strip = (s: string) => (bos && s.startsWith(bos) ? s.slice(bos.length) : s);
  preamble = strip(preamble);
  let system: [string, string] | null = null;
  try {
    const withSys = cut(
      t.render(
        [
          { role: 'system', content: MARK('S') },
          { role: 'user', content: MARK('U1') },
        ],
        { addGenerationPrompt: true },
      ),
      [MARK('S'), MARK('U1')],
    );
    if (withSys && withSys[1].endsWith(userPre))
      system = [strip(withSys[0]), withSys[1].slice(0, withSys[1].length - userPre.length)];
  } catch {
    system = null;
  }
  return { preamble, system, user: [userPre, userSuf], assistant: [assistantPre, assistantSuf], generation };
}

const goString = (s: string) => s.replace(/\{\{/g, '{{ "{{" }}');

export function goTemplate(p: RolePieces): string {
  // one line, no whitespace trimming: the pieces' own newlines are part of the prompt
  const sys = p.system
    ? `{{ if eq .Role "system" }}${goString(p.system[0])}{{ .Content }}${goString(p.system[1])}{{ else `
    : '{{ ';
  return (
    `{{ if not (and .Messages (eq (index .Messages 0).Role "system")) }}${goString(p.preamble)}{{ end }}` +
    `{{ range .Messages }}` +
    `${sys}if eq .Role "user" }}${goString(p.user[0])}{{ .Content }}${goString(p.user[1])}` +
    `{{ else if eq .Role "assistant" }}${goString(p.assistant[0])}{{ .Content }}${goString(p.assistant[1])}` +
    `{{ end }}{{ end }}${goString(p.generation)}`
  );
}

function quote(s: string): string {
  return JSON.stringify(s);
}

export function ollamaModelfile(o: {
  model: string;
  mmproj: string | null;
  template: ChatTemplate | null;
  tokenizer: LensTokenizer;
}): string {
  const lines = [`# ollama create <name> -f Modelfile`, `FROM ./${o.model}`];
  if (o.mmproj) lines.push(`FROM ./${o.mmproj}`);
  const pieces = o.template ? rolePieces(o.template, o.tokenizer.bosToken) : null;
  if (pieces) {
    if (pieces.system === null) lines.push('# the chat template has no system role');
    lines.push(`TEMPLATE """${goTemplate(pieces).replace(/"""/g, '" " "')}"""`);
  } else lines.push('# no chat template could be derived from the model: Ollama will use the raw prompt');
  if (o.tokenizer.eosToken) lines.push(`PARAMETER stop ${quote(o.tokenizer.eosToken)}`);
  return lines.join('\n') + '\n';
}
