import { HeraldError, invalid, notFound } from '../api/errors.js';
import type { Db, Queryable } from '../store/db.js';
import { compile, detectEngine, TemplateSyntaxError, type TemplateEngine } from './render.js';

export interface Template {
  name: string;
  channel: string;
  description: string;
  subject: string;
  body: string;
  msgType: string;
  templateCode: string;
  engine: TemplateEngine;
  createdAt: string;
  updatedAt: string;
}

export type TemplateInput = Partial<Omit<Template, 'createdAt' | 'updatedAt' | 'engine'>> & {
  engine?: TemplateEngine;
};

interface Row {
  name: string;
  channel: string;
  description: string;
  subject: string;
  body: string;
  msg_type: string;
  template_code: string;
  engine: TemplateEngine;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'name, channel, description, subject, body, msg_type, template_code, engine, created_at, updated_at';

export function toTemplate(r: Row): Template {
  return {
    name: r.name,
    channel: r.channel,
    description: r.description,
    subject: r.subject,
    body: r.body,
    msgType: r.msg_type,
    templateCode: r.template_code,
    engine: r.engine,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}

/** Checks that subject and body parse, and picks the engine when the author did not. */
function prepare(input: TemplateInput): TemplateEngine {
  const subject = input.subject ?? '';
  const body = input.body ?? '';
  const engine = input.engine ?? detectEngine(subject, body);
  for (const [field, text] of [['subject', subject], ['body', body]] as const) {
    try {
      compile(text, engine);
    } catch (error) {
      if (error instanceof TemplateSyntaxError) throw invalid(field, `does not parse: ${error.message}`);
      throw error;
    }
  }
  return engine;
}

const UNIQUE_VIOLATION = '23505';

/** Templates, each owned by one app and addressed by name. */
export class TemplateStore {
  constructor(private readonly db: Db) {}

  async create(appId: string, input: TemplateInput & { name: string; channel: string }): Promise<Template> {
    const engine = prepare(input);
    try {
      const rows = await this.db.query<Row>(
        `insert into templates (app_id, name, channel, description, subject, body, msg_type, template_code, engine)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning ${COLUMNS}`,
        [appId, input.name, input.channel, input.description ?? '', input.subject ?? '', input.body ?? '',
          input.msgType ?? '', input.templateCode ?? '', engine],
      );
      return toTemplate(rows[0]!);
    } catch (error) {
      if ((error as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new HeraldError('conflict', `template "${input.name}" already exists`, 'name');
      }
      throw error;
    }
  }

  async list(appId: string, channel?: string): Promise<Template[]> {
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from templates where app_id = $1 and ($2::text is null or channel = $2) order by name`,
      [appId, channel ?? null],
    );
    return rows.map(toTemplate);
  }

  async get(appId: string, name: string): Promise<Template> {
    const rows = await this.db.query<Row>(`select ${COLUMNS} from templates where app_id = $1 and name = $2`, [appId, name]);
    if (!rows[0]) throw notFound(`template "${name}"`);
    return toTemplate(rows[0]);
  }

  /** Replaces the content fields; name and channel stay as they are. */
  async update(appId: string, name: string, input: TemplateInput): Promise<Template> {
    const engine = prepare(input);
    const rows = await this.db.query<Row>(
      `update templates set description = $3, subject = $4, body = $5, msg_type = $6, template_code = $7,
         engine = $8, updated_at = now()
       where app_id = $1 and name = $2 returning ${COLUMNS}`,
      [appId, name, input.description ?? '', input.subject ?? '', input.body ?? '', input.msgType ?? '',
        input.templateCode ?? '', engine],
    );
    if (!rows[0]) throw notFound(`template "${name}"`);
    return toTemplate(rows[0]);
  }

  async delete(appId: string, name: string): Promise<void> {
    const rows = await this.db.query('delete from templates where app_id = $1 and name = $2 returning name', [appId, name]);
    if (!rows[0]) throw notFound(`template "${name}"`);
  }
}

/** Looks up many (app, name) pairs in one statement; used by the accept batch before it writes. */
export async function findTemplates(
  tx: Queryable,
  keys: readonly { appId: string; name: string }[],
): Promise<Map<string, Template>> {
  const rows = await tx.query<Row & { app_id: string }>(
    `select app_id, ${COLUMNS} from templates
     where (app_id, name) in (select * from unnest($1::text[], $2::text[]))`,
    [keys.map((k) => k.appId), keys.map((k) => k.name)],
  );
  return new Map(rows.map((r) => [templateKey(r.app_id, r.name), toTemplate(r)]));
}

export const templateKey = (appId: string, name: string): string => `${appId}\0${name}`;
