// The JSON shapes of /api/v1/ama/ (annotator_app/ama/serializers.py).

export interface AmaRound {
  id: number;
  index: number;
  question: string;
  status: "pending" | "running" | "done" | "failed";
  failure_reason: string;
  caption: string;
  caption_source: string;
  caption_source_label: string;
  caption_model: string;
  ocr_text: string;
  ocr_instruction_like: boolean;
  prompt_version: string;
  model_name: string;
  answer: string;
  answer_problems: string[];
  verdict: "pending" | "accepted" | "rejected";
  feedback: string;
  caption_ms: number;
  ocr_ms: number;
  llm_ms: number;
  seconds_to_answer: number | null;
  created_at: string;
  stage_started_at: string;
}

export interface AmaSession {
  id: number;
  status: "open" | "accepted" | "skipped";
  skip_reason: string;
  assignment_status: string;
  rounds: AmaRound[];
}
