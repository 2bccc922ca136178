// Prop types shared by the presentational components (and the views that feed them).
export type AnnotationKind = 'caption' | 'qa' | 'chat';
export type ChatRole = 'system' | 'user' | 'assistant';
export interface CaptionData {
  text: string;
}
export interface QaData {
  question: string;
  answer: string;
}
export interface ChatTurn {
  role: ChatRole;
  content: string;
}
export interface ChatData {
  messages: ChatTurn[];
}
/** One annotation of an item, as stored (`annotations.kind` + `data_json`); `id` absent for new ones. */
export type EditorAnnotation =
  | { id?: number; kind: 'caption'; data: CaptionData }
  | { id?: number; kind: 'qa'; data: QaData }
  | { id?: number; kind: 'chat'; data: ChatData };

export interface TokenInfo {
  id: number;
  text: string;
  /** Whether the training loss is computed on this token (assistant answer tokens). */
  inLoss: boolean;
  /** Optional: a special/control token (rendered as a chip). */
  special?: boolean;
}

export interface LintProblem {
  /** Machine kind, e.g. 'missing_image', 'empty_caption', 'duplicate_image', 'too_long'. */
  kind: string;
  severity?: 'error' | 'warning' | 'info';
  message: string;
  itemId?: number;
}

export interface TranscriptMessage {
  id?: number | string;
  role: ChatRole;
  content: string;
  /** Object URL / data URL / served URL of an attached image. */
  imageUrl?: string | null;
  /** This assistant message is still streaming. */
  streaming?: boolean;
  /** Generation failed or was stopped; shown under the message. */
  error?: string | null;
  stopped?: boolean;
  /** e.g. { tokens: 42, tokensPerSecond: 7.9 } */
  stats?: {
    tokens?: number;
    tokensPerSecond?: number;
    seconds?: number;
    /** where it was generated and why */ device?: string;
  } | null;
  /** Why an answer ended: 'eos' (end of turn), 'stop' (a stop string), 'length' (max tokens), 'cancelled'. */
  finishReason?: string | null;
  /** Saved messages: position in the chat and the stored image (to regenerate or edit). */
  position?: number;
  imageHash?: string | null;
  /** Served URL / object URL of an attached audio clip, and the stored clip's hash. */
  audioUrl?: string | null;
  audioHash?: string | null;
}

export interface Prediction {
  id: number | string;
  imageUrl?: string | null;
  question: string;
  reference?: string | null;
  prediction: string;
  /** null: not scored (free-form captions). */
  correct?: boolean | null;
  /** Optional score shown as a number (e.g. BLEU of this item). */
  score?: number | null;
  /** The same item answered by another model (base vs fine-tuned). */
  compare?: { prediction: string; correct?: boolean | null; score?: number | null } | null;
}

export interface MemoryPart {
  key: 'weights' | 'trainable' | 'activations' | 'other' | string;
  label: string;
  bytes: number;
  /** Hover text saying what is in it. */
  detail?: string;
}
export interface MemorySuggestion {
  id: string;
  label: string;
  /** What it saves, e.g. "saves ~1.2 GB". */
  effect?: string;
}
