/**
 * Chat prompts: the model's own chat template (tokenizer_config.json's `chat_template`, Jinja)
 * rendered with @huggingface/jinja, with the variables transformers' `apply_chat_template`
 * passes (messages, add_generation_prompt, bos_token, eos_token; the library supplies raise_exception).
 */
import { Template } from '@huggingface/jinja';
import { InputError, UsageError } from '../io/errors.js';
import type { Tokenizer } from '../io/tokenizer.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** The text the model continues: the messages in the template's format, ending with the assistant's turn opened. */
export function renderChat(tokenizer: Tokenizer, messages: readonly ChatMessage[]): string {
  const chat = tokenizer.chat;
  if (chat === undefined) throw new UsageError('this model has no chat template (tokenizer_config.json has no chat_template): leave out --chat');
  let template: Template;
  try {
    template = new Template(chat.template);
  } catch (e) {
    throw new InputError(chat.file, `chat template does not parse: ${(e as Error).message}`);
  }
  let text: string;
  try {
    text = template.render({
      messages,
      add_generation_prompt: true,
      bos_token: chat.bosToken,
      eos_token: chat.eosToken,
    });
  } catch (e) {
    throw new InputError(chat.file, `chat template failed (or refused the conversation): ${(e as Error).message}`);
  }
  // an empty template (or one that drops every message) leaves the model nothing to continue
  if (text.trim() === '') throw new InputError(chat.file, 'chat template renders the conversation as an empty prompt');
  return text;
}
