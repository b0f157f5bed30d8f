import { useMemo } from 'react';
import Alert from '@mui/material/Alert';
import Button from '@mui/material/Button';
import CircularProgress from '@mui/material/CircularProgress';
import List from '@mui/material/List';
import ListItemButton from '@mui/material/ListItemButton';
import MenuItem from '@mui/material/MenuItem';
import TextField from '@mui/material/TextField';
import Typography from '@mui/material/Typography';
import { ConnectedCompanionWindow as CompanionWindow, useTranslation } from 'mirador';
import { regionAnnotationsFromLists } from '../lib/regions';

function formatScore(score) {
  return score === null || score === undefined ? '–' : score.toFixed(3);
}

function pageText(t, hit) {
  return hit.canvasLabel ? t('findSimilarPage', { page: hit.canvasLabel }) : '';
}

function Hit({
  hit, index, currentManifestId, onShow, t,
}) {
  const title = hit.manifestLabel || t('findSimilarUnknownBook');
  const classLabel = hit.classLabel || t('findSimilarUnlabelled');
  const otherBook = hit.manifestId && hit.manifestId !== currentManifestId;
  const description = t('findSimilarHit', {
    label: classLabel, page: pageText(t, hit) || hit.xywh.join(','), score: formatScore(hit.score), title,
  }) + (otherBook ? ` (${t('findSimilarHitOtherBook')})` : '');
  return (
    <li style={{ listStyle: 'none' }}>
      <ListItemButton
        aria-label={description}
        className="mirador-find-similar-hit"
        data-canvas={hit.canvasId}
        data-manifest={hit.manifestId || ''}
        data-rank={index + 1}
        data-xywh={hit.xywh.join(',')}
        onClick={() => onShow(hit)}
        sx={{ alignItems: 'flex-start', gap: 1 }}
      >
        {hit.thumbnail && (
          <img
            alt=""
            loading="lazy"
            src={hit.thumbnail}
            style={{
              background: '#eee', flex: '0 0 auto', height: 72, objectFit: 'contain', width: 72,
            }}
          />
        )}
        <span aria-hidden="true" style={{ minWidth: 0 }}>
          <Typography component="span" display="block" variant="subtitle2">{title}</Typography>
          <Typography component="span" display="block" variant="body2">
            {[pageText(t, hit), classLabel].filter(Boolean).join(' · ')}
          </Typography>
          <Typography component="span" display="block" variant="caption">
            {t('findSimilarScore', { score: formatScore(hit.score) })}
            {otherBook ? ` · ${t('findSimilarHitOtherBook')}` : ''}
          </Typography>
        </span>
      </ListItemButton>
    </li>
  );
}

/** The companion window: how to ask (draw, or pick a marked region), filters, and the results. */
export function FindSimilarPanel({
  annotationLists = [], canvasLabel = '', currentCanvasId = null, currentManifestId = null, findMore, findSimilar,
  id, settings, setMode, setOptions, showHit, windowId, windowState = {},
}) {
  const { t } = useTranslation();
  const {
    error = null, hits = [], loadingMore = false, mode = 'idle', next = null, query = null, status = 'idle', total = null,
  } = windowState;
  const regions = useMemo(
    () => regionAnnotationsFromLists(annotationLists, settings.endpoint)
      .filter((r) => !currentCanvasId || r.canvasId === currentCanvasId),
    [annotationLists, settings.endpoint, currentCanvasId],
  );
  const onShow = (hit) => showHit(windowId, hit, currentManifestId);

  let statusText = '';
  if (status === 'loading') statusText = t('findSimilarLoading');
  else if (status === 'error') statusText = t('findSimilarError', { error });
  else if (status === 'done' && hits.length === 0) statusText = t('findSimilarEmpty');
  else if (status === 'done') {
    statusText = total ? t('findSimilarResultsCountTotal', { count: hits.length, total })
      : t('findSimilarResultsCount', { count: hits.length });
  }

  return (
    <CompanionWindow id={id} title={t('findSimilarTitle')} windowId={windowId}>
      <div className="mirador-find-similar-panel" style={{ display: 'flex', flexDirection: 'column', gap: 12, padding: 12 }}>
        {!settings.endpoint && <Alert severity="warning">{t('findSimilarNoEndpoint')}</Alert>}
        <Button
          aria-pressed={mode === 'draw'}
          className="mirador-find-similar-draw-button"
          onClick={() => setMode(windowId, mode === 'draw' ? 'idle' : 'draw')}
          variant={mode === 'draw' ? 'contained' : 'outlined'}
        >
          {mode === 'draw' ? t('findSimilarCancelDraw') : t('findSimilarDraw')}
        </Button>
        {mode === 'draw' && <Typography variant="body2">{t('findSimilarDrawHint')}</Typography>}
        <div style={{ display: 'flex', flexWrap: 'wrap', gap: 8 }}>
          {settings.models.length > 0 && (
            <TextField
              label={t('findSimilarModel')}
              onChange={(e) => setOptions(windowId, { model: e.target.value })}
              select
              size="small"
              value={settings.model}
            >
              <MenuItem value="">{t('findSimilarModelDefault')}</MenuItem>
              {settings.models.map((m) => <MenuItem key={m} value={m}>{m}</MenuItem>)}
            </TextField>
          )}
          {settings.classes.length > 0 && (
            <TextField
              label={t('findSimilarClass')}
              onChange={(e) => setOptions(windowId, { classFilter: e.target.value })}
              select
              size="small"
              sx={{ minWidth: 140 }}
              value={settings.classFilter}
            >
              <MenuItem value="">{t('findSimilarClassAny')}</MenuItem>
              {settings.classes.map((c) => <MenuItem key={c} value={c}>{c}</MenuItem>)}
            </TextField>
          )}
          <TextField
            label={t('findSimilarK')}
            onChange={(e) => setOptions(windowId, { k: Math.max(1, Math.min(200, Number(e.target.value) || 1)) })}
            size="small"
            slotProps={{ htmlInput: { max: 200, min: 1 } }}
            sx={{ width: 90 }}
            type="number"
            value={settings.k}
          />
        </div>

        <section aria-labelledby={`${id}-regions`}>
          <Typography id={`${id}-regions`} component="h3" variant="overline">{t('findSimilarRegions')}</Typography>
          {regions.length === 0 ? (
            <Typography variant="body2">{t('findSimilarNoRegions')}</Typography>
          ) : (
            <List dense disablePadding component="ul">
              {regions.map((r) => (
                <li key={r.id} style={{ listStyle: 'none' }}>
                  <ListItemButton
                    aria-label={`${t('findSimilarPick')}: ${r.label || r.regionId} (${r.xywh.join(',')})`}
                    className="mirador-find-similar-region"
                    data-region={r.regionId}
                    onClick={() => findSimilar(windowId, {
                      canvasId: r.canvasId, kind: 'region', label: r.label, regionId: r.regionId, xywh: r.xywh,
                    })}
                  >
                    {`${r.label || t('findSimilarUnlabelled')} · ${r.xywh.join(',')}`}
                  </ListItemButton>
                </li>
              ))}
            </List>
          )}
        </section>

        <section aria-labelledby={`${id}-results`} aria-busy={status === 'loading' || loadingMore}>
          <Typography id={`${id}-results`} component="h3" variant="overline">{t('findSimilarResults')}</Typography>
          {query && (
            <Typography variant="body2">
              {query.kind === 'box'
                ? t('findSimilarQueryBox', { page: canvasLabel || query.canvasId })
                : t('findSimilarQueryRegion', { label: query.label || query.regionId, page: canvasLabel || query.canvasId })}
            </Typography>
          )}
          <div aria-live="polite" className="mirador-find-similar-status" data-status={status} role="status">
            {status === 'loading' && <CircularProgress aria-hidden="true" size={16} sx={{ mr: 1 }} />}
            {status === 'error' ? <Alert severity="error">{statusText}</Alert> : statusText}
          </div>
          {hits.length > 0 && (
            <List className="mirador-find-similar-results" component="ol" disablePadding>
              {hits.map((hit, index) => (
                <Hit
                  currentManifestId={currentManifestId}
                  hit={hit}
                  index={index}
                  key={`${hit.id || ''}-${index}`}
                  onShow={onShow}
                  t={t}
                />
              ))}
            </List>
          )}
          {status === 'done' && error && <Alert severity="error">{t('findSimilarError', { error })}</Alert>}
          {next && status === 'done' && (
            <Button
              className="mirador-find-similar-more"
              disabled={loadingMore}
              onClick={() => findMore(windowId)}
              variant="text"
            >
              {t('findSimilarMore')}
            </Button>
          )}
        </section>
      </div>
    </CompanionWindow>
  );
}
